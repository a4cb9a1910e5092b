"""The CloudCatalog reader against a real S3 endpoint (moto) and a real HTTP server."""

import functools
import http.server
import json
import threading
import time

import dask
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.app.cli import main
from tests.builders import catalog_json, dataset_entry, index_csv, make_rows

ROOT = "s3://hdrl-test/"


@pytest.fixture
def bucket_s3(s3):
    """A bucket with two AIA-like datasets and indexes in another prefix."""
    fs = s3.filesystem()
    fs.mkdir("hdrl-test")
    entries = [
        dataset_entry(
            "aia_0094",
            index=ROOT + "sdo/aia/registries/",
            start="2019-12-31T00:00Z",
            stop="2021-01-01T23:56:00Z",
            description="SDO AIA 94",
        ),
        dataset_entry(
            "aia_0131", index=ROOT + "sdo/aia/registries/", start="2020-01-01", stop="2020-12-31"
        ),
    ]
    fs.pipe_file("hdrl-test/catalog.json", catalog_json(ROOT, entries, name="HDRL test").encode())
    r2019 = make_rows("2019-12-31T23:40", 5, bucket="hdrl-test")
    r2020 = make_rows("2020-01-01T00:00", 200, bucket="hdrl-test")
    r2020 = r2020[50:] + r2020[:50]  # rotated, like the live 2020 index
    fs.pipe_file(
        "hdrl-test/sdo/aia/registries/aia_0094_2019.csv",
        index_csv(r2019, header=None, stop=False).encode(),
    )
    fs.pipe_file("hdrl-test/sdo/aia/registries/aia_0094_2020.csv", index_csv(r2020).encode())
    registry = {
        "version": "1.0",
        "registry": [
            {
                "endpoint": ROOT,
                "name": "HelioCloud, including SDO",
                "region": "us-east-1",
                "provider": "aws",
            }
        ],
    }
    fs.pipe_file("hdrl-test/HelioDataRegistry.json", json.dumps(registry).encode())
    return s3


def test_bucket_files_over_s3(bucket_s3):
    so = bucket_s3.storage_options
    bucket = ih.open_bucket(ROOT, storage_options=so)
    assert bucket.name == "HDRL test" and sorted(bucket) == ["aia_0094", "aia_0131"]
    df = bucket["aia_0094"].files("2019-12-31T23:50", "2020-01-01T01:00")
    # 2019 file: 3-column, no header; rows at 23:52 and 23:56 (stop = start)
    assert df["datakey"].iloc[0].startswith("s3://hdrl-test/data/20191231/")
    assert df["start"].is_monotonic_increasing
    assert len(df) == 2 + 15  # 2019: 23:52, 23:56; 2020: 00:00 .. 00:56
    assert df["start"].iloc[-1] == pd.Timestamp("2020-01-01T00:56")
    assert df["filesize"].dtype == "int64"


def test_storage_options_are_required_and_used(bucket_s3):
    # without the endpoint_url the local bucket cannot be reached: proof the options are used
    with pytest.raises(OSError, match="cannot read bucket catalog s3://hdrl-test/catalog.json"):
        ih.open_bucket(
            ROOT,
            storage_options={
                "key": "x",
                "secret": "y",
                "endpoint_url": "http://127.0.0.1:9",
                "config_kwargs": {"retries": {"max_attempts": 1}},
            },
        )
    so = {"s3": bucket_s3.storage_options}  # per-protocol form
    ds = ih.open_bucket(ROOT, storage_options=so)["aia_0094"]
    assert len(ds.files("2020-01-01", "2020-01-02")) == 200


def test_registry_on_s3_and_search(bucket_s3):
    reg = ih.open_registry(ROOT + "HelioDataRegistry.json", bucket_s3.storage_options)
    assert reg.endpoint("HelioCloud, including SDO") == ROOT
    res = reg.search("aia", start="2020-06-01", stop="2020-07-01")
    assert sorted(d.id for d in res) == ["aia_0094", "aia_0131"] and res.unreachable == {}


def test_missing_index_location_over_s3(bucket_s3):
    fs = bucket_s3.filesystem()
    fs.pipe_file(
        "hdrl-test/catalog.json",
        catalog_json(ROOT, [dataset_entry("x", index=ROOT + "nowhere/")]).encode(),
    )
    bucket = ih.open_bucket(ROOT, storage_options=bucket_s3.storage_options)
    with pytest.raises(ih.CatalogNotFoundError, match="index location s3://hdrl-test/nowhere/"):
        bucket["x"].files("2020-01-01", "2020-02-01")


def test_missing_bucket_catalog(s3):
    with pytest.raises(FileNotFoundError, match="bucket catalog s3://no-such-bucket/catalog.json"):
        ih.open_bucket("s3://no-such-bucket/", storage_options=s3.storage_options)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


def test_registry_and_index_over_http(bucket_s3, http_root):
    """Registry on http(s), bucket on S3, index files on http: each gets its own options."""
    root_dir, url = http_root
    (root_dir / "HelioDataRegistry.json").write_text(
        json.dumps({"CloudMe": "0.1", "registry": [{"endpoint": ROOT, "name": "mixed"}]})
    )
    (root_dir / "idx").mkdir()
    rows = make_rows("2020-03-01", 10, bucket="hdrl-test")
    (root_dir / "idx" / "web_2020.csv").write_text(index_csv(rows, quote="'"))
    fs = bucket_s3.filesystem()
    fs.pipe_file(
        "hdrl-test/catalog.json",
        catalog_json(
            ROOT, [dataset_entry("web", index=url + "idx/", start="2020-01-01", stop="2020-12-31")]
        ).encode(),
    )
    reg = ih.open_registry(url + "HelioDataRegistry.json", bucket_s3.storage_options)
    # a catalog on S3 naming plain http on another host is refused by the URL policy ...
    with pytest.warns(ih.HelioWarning, match="URL not allowed"):
        refused = reg.open_bucket("mixed")
    with pytest.raises(ih.CatalogFormatError, match="URL not allowed"):
        refused["web"]
    # ... unless that host is trusted in the settings
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": [url]}):
        bucket = reg.open_bucket("mixed")
        df = bucket["web"].files("2020-03-01T00:10", "2020-03-01T00:30")
    assert df["datakey"].tolist() == [r[2] for r in rows[2:8]]


def test_cli_ls_and_files(bucket_s3, capsys, tmp_path):
    url = bucket_s3.endpoint_url
    creds = [f"--storage-option=key={bucket_s3.key}", f"--storage-option=secret={bucket_s3.secret}"]
    assert main(["ls", ROOT, "--endpoint-url", url, *creds]) == 0
    out = capsys.readouterr().out
    assert "aia_0094" in out and "aia_0131" in out and "2019-12-31" in out
    out_csv = tmp_path / "f.csv"
    assert (
        main(
            [
                "files",
                ROOT,
                "aia_0094",
                "--start",
                "2020-01-01",
                "--stop",
                "2020-01-01T01:00",
                "--out",
                str(out_csv),
                "--endpoint-url",
                url,
                *creds,
            ]
        )
        == 0
    )
    df = pd.read_csv(out_csv)
    assert len(df) == 15 and list(df.columns) == ["start", "stop", "datakey", "filesize"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["files", ROOT, "aia_094", "--start", "2020-01-01", "--stop", "2020-01-02"],
            "did you mean 'aia_0094'",
        ),
        (
            ["files", ROOT, "aia_0094", "--start", "2020-02-01", "--stop", "2020-01-01"],
            "is not before stop",
        ),
        (
            ["files", ROOT, "aia_0094", "--start", "soon", "--stop", "2020-01-01"],
            "start='soon' is not a time",
        ),
        (["ls", "s3://nope/"], "does not exist"),
        (["ls", ROOT, "--storage-option", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_cli_bad_input_one_line_exit_2(bucket_s3, capsys, argv, needle):
    code = main([*argv, "--endpoint-url", bucket_s3.endpoint_url])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_bucket_unavailable_exit_1(bucket_s3, capsys):
    fs = bucket_s3.filesystem()
    fs.pipe_file(
        "hdrl-test/catalog.json",
        catalog_json(ROOT, [], status={"code": 1400, "message": "down for maintenance"}).encode(),
    )
    assert main(["ls", ROOT, "--endpoint-url", bucket_s3.endpoint_url]) == 1
    assert "temporarily unavailable" in capsys.readouterr().err


def test_index_year_fetch_is_concurrent(bucket_s3):
    """Several years are fetched concurrently, not one after another."""
    from aiobotocore.client import AioBaseClient

    fs = bucket_s3.filesystem()
    for year in range(2011, 2021):
        fs.pipe_file(
            f"hdrl-test/many/m_{year}.csv", index_csv(make_rows(f"{year}-06-01", 3)).encode()
        )
    fs.pipe_file(
        "hdrl-test/catalog.json",
        catalog_json(
            ROOT, [dataset_entry("m", index=ROOT + "many/", start="2011-01-01", stop="2020-12-31")]
        ).encode(),
    )
    calls = []
    original = AioBaseClient._make_api_call

    async def slow_api_call(self, operation_name, *a, **kw):
        import asyncio

        calls.append(operation_name)
        await asyncio.sleep(0.3)
        return await original(self, operation_name, *a, **kw)

    ds = ih.open_bucket(ROOT, bucket_s3.storage_options)["m"]
    AioBaseClient._make_api_call = slow_api_call
    try:
        t0 = time.perf_counter()
        df = ds.files()
        elapsed = time.perf_counter() - t0
    finally:
        AioBaseClient._make_api_call = original
    assert len(df) == 30
    # one (bounded) GET per year, no existence checks
    assert calls == ["GetObject"] * 10, calls
    assert elapsed < 0.3 * 10 / 2, f"10 yearly reads of 0.3 s took {elapsed:.2f} s: not concurrent"
