"""Catalogs are third-party content: real local servers playing hostile or broken hosts.

Each test runs against real servers on 127.0.0.1: the moto S3 server (``s3`` fixture) and
small HTTP servers started here (:mod:`intake_helio.testing.http_server`): a second host that
must not receive the catalog host's credentials, servers that stream without end, declare
10 GiB, accept and never answer, and a 3 MB csv-zip that expands to 3 GiB. Memory-hungry
cases run the CLI in a child process under an address-space limit.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
from intake_helio.app.cli import main
from intake_helio.base.errors import FrameReadError
from intake_helio.catalog.index import read_index
from intake_helio.fits.frame import read_frame
from intake_helio.io.storage import ContentTooLargeError, MissingCredentialsError
from intake_helio.io.transport import filesystem
from intake_helio.testing.http_server import Declared, Endless, LocalHTTP, SilentServer
from tests.builders import catalog_json, dataset_entry, index_csv, make_rows

CANARY = "canary-url-password-5d81c2"
BEARER = "Bearer canary-catalog-token-e09b7a"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def web():
    with LocalHTTP() as a, LocalHTTP() as b:
        yield a, b


def _catalog(root: str, entries) -> str:
    return catalog_json(root, entries, name="Third-party bucket")


# --------------------------------------------------------------------------- hosts
def test_auth_header_reaches_only_the_host_the_user_gave(web):
    a, b = web
    root = a.url + "/bkt/"
    rows = make_rows("2020-03-01", 5)
    a.put("/bkt/catalog.json", _catalog(root, [dataset_entry("web", index=b.url + "/idx/")]))
    b.put("/idx/web_2020.csv", index_csv(rows))
    so = {"http": {"headers": {"Authorization": BEARER}}}
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": [b.url]}):
        bucket = ih.open_bucket(root, so)
        df = bucket["web"].files("2020-03-01", "2020-03-02")
    assert df["datakey"].tolist() == [r[2] for r in rows]
    assert [r.headers.get("authorization") for r in a.requests] == [BEARER]  # control
    assert b.requests and all("authorization" not in r.headers for r in b.requests)
    assert BEARER not in repr(b.requests)
    # credentials for the second host are given keyed by its origin, and reach it alone
    so[b.url] = {"headers": {"X-Token": "for-b-only"}}
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": [b.url]}):
        ih.open_bucket(root, so)["web"].files("2020-03-01", "2020-03-02")
    assert b.requests[-1].headers.get("x-token") == "for-b-only"
    assert "authorization" not in b.requests[-1].headers
    assert "x-token" not in a.requests[-1].headers


def test_content_urls_are_checked_before_any_request(web):
    a, b = web
    root = a.url + "/bkt/"
    entries = [
        dataset_entry("good", index="./idx/"),  # relative to the catalog's own URL
        dataset_entry("../../etc", index="./idx/"),
        dataset_entry("up", index="../outside/"),
        dataset_entry("plain_http", index=b.url + "/idx/"),  # another host over plain http
        dataset_entry("local", index="file:///etc/"),
        dataset_entry("chain", index=f"filecache::{b.url}/idx/"),
        dataset_entry("future", start="2300-01-01T00:00:00Z", index="./idx/"),
    ]
    a.put("/bkt/catalog.json", _catalog(root, entries))
    rows = make_rows("2020-01-01", 4)
    rows[1][2] = b.url + "/data/x.fits"  # a datakey on another host over plain http
    rows[2][2] = root + "data/y.fits"  # a datakey on the index's own host
    a.put("/bkt/idx/good_2020.csv", index_csv(rows))
    with pytest.warns(ih.HelioWarning, match="skipped 6 dataset") as caught:
        bucket = ih.open_bucket(root)
    assert list(bucket) == ["good"] and "etc" not in str(caught[0].message)
    assert bucket["good"].index == root + "idx/"
    df = bucket["good"].files("2020-01-01", "2020-01-02", errors="report")
    assert df["datakey"].tolist() == [rows[0][2], rows[2][2], rows[3][2]]
    (bad,) = df.attrs["bad_rows"]
    assert bad.line == 3 and bad.reason.startswith("URL not allowed: datakey")
    assert bad.file == root + "idx/good_2020.csv"
    with pytest.raises(ih.IndexParseError, match="good_2020.csv line 3: URL not allowed"):
        bucket["good"].files("2020-01-01", "2020-01-02")
    assert sorted(r.path for r in a.requests) == [
        "/bkt/catalog.json",
        "/bkt/idx/good_2020.csv",
        "/bkt/idx/good_2020.csv",
    ]
    assert b.requests == []  # nothing named by content was read on the other host
    with pytest.raises(ih.CatalogFormatError, match="URL not allowed"):
        bucket["plain_http"]
    with pytest.warns(ih.HelioWarning, match="skipped 6 dataset"):
        code = main(["files", root, "future", "--start", "2020-01-01", "--stop", "2020-02-01"])
    assert code == 4  # unexpected data: the catalog's date is out of range


def test_out_of_range_values_over_s3(s3):
    fs = s3.filesystem()
    fs.mkdir("trust")
    root = "s3://trust/"
    entries = [
        dataset_entry("aia", index=root + "idx/", start="2020-01-01", stop="2020-12-31"),
        dataset_entry("old", index=root + "idx/", start="0001-01-01", stop="2020-12-31"),
    ]
    fs.pipe_file("trust/catalog.json", _catalog(root, entries).encode())
    rows = make_rows("2020-01-01", 6, bucket="trust")
    rows[1][0] = "2300-01-01T00:00:00Z"
    rows[2][1] = "0001-01-01T00:00:00Z"
    rows[3][3] = "inf"
    rows[4][3] = "-2880"
    rows[5][3] = "1e40"
    fs.pipe_file("trust/idx/aia_2020.csv", index_csv(rows).encode())
    with pytest.warns(ih.HelioWarning, match="'old'.*start is not a usable time"):
        bucket = ih.open_bucket(root, s3.storage_options)
    assert list(bucket) == ["aia"] and list(bucket.invalid) == ["old"]
    df = bucket["aia"].files("2020-01-01", "2020-01-02", errors="report")
    assert df["datakey"].tolist() == [rows[0][2]]
    assert [(b.line, b.reason.split(" (")[0]) for b in df.attrs["bad_rows"]] == [
        (3, "start"),
        (4, "stop"),
        (5, "filesize"),
        (6, "filesize"),
        (7, "filesize"),
    ]
    assert all(b.file == root + "idx/aia_2020.csv" for b in df.attrs["bad_rows"])


def test_registry_search_reports_each_bad_bucket_and_goes_on(s3):
    fs = s3.filesystem()
    for name in ("good", "deep", "huge"):
        fs.mkdir(f"trust-{name}")
    fs.pipe_file(
        "trust-good/catalog.json",
        _catalog("s3://trust-good/", [dataset_entry("aia", index="./idx/")]).encode(),
    )
    fs.pipe_file("trust-deep/catalog.json", b"[" * 4000 + b"]" * 4000)  # parsable size
    fs.pipe_file("trust-huge/catalog.json", b'{"version": "1", "catalog": [], "x": "' + b"x" * 9000)
    registry = {
        "version": "1.0",
        "registry": [
            {"endpoint": "s3://trust-good/", "name": "good"},
            {"endpoint": "s3://trust-deep/", "name": "deep"},
            {"endpoint": "s3://trust-huge/", "name": "huge"},
            {"endpoint": "http://127.0.0.1:1/", "name": "plain http elsewhere"},
            {"endpoint": "filecache::s3://trust-good/", "name": "chained"},
        ],
    }
    fs.pipe_file("trust-good/registry.json", json.dumps(registry).encode())
    with dask.config.set({"intake_helio.limits.json-bytes": 8192}):
        with pytest.warns(ih.HelioWarning, match="skipped 2 registry entr"):
            reg = ih.open_registry("s3://trust-good/registry.json", s3.storage_options)
        with pytest.warns(ih.HelioWarning, match="unreachable"):
            res = reg.search("aia")
    assert [d.id for d in res] == ["aia"]
    reasons = res.unreachable
    assert "nested too deeply" in reasons["s3://trust-deep/"]
    assert "has more than 8192 bytes" in reasons["s3://trust-huge/"]
    assert sorted(k for k in reasons if k.startswith("registry[")) == ["registry[3]", "registry[4]"]
    assert all("URL not allowed" in reasons[k] for k in ("registry[3]", "registry[4]"))
    with pytest.raises(ih.CatalogFormatError, match="URL not allowed"):
        reg.endpoint("chained")


# --------------------------------------------------------------------------- sizes
def test_sizes_are_checked_before_and_while_reading(s3, web):
    a, _ = web
    a.put("/big/catalog.json", Declared(10 * 2**30, b"{}"))  # says 10 GiB: refused unread
    t0 = time.perf_counter()
    with pytest.raises(ContentTooLargeError, match=r"catalog\.json has more than 67108864 bytes"):
        ih.open_bucket(a.url + "/big/")
    assert time.perf_counter() - t0 < 5
    a.put("/endless/catalog.json", Endless())
    with (
        dask.config.set({"intake_helio.limits.json-bytes": "2 MiB"}),
        pytest.raises(ContentTooLargeError, match="2097152 bytes.*json-bytes"),
    ):
        ih.open_bucket(a.url + "/endless/")
    # an index file on S3 above its limit names the file and the setting
    fs = s3.filesystem()
    fs.mkdir("trust")
    fs.pipe_file("trust/idx/x_2020.csv", index_csv(make_rows("2020-01-01", 100)).encode())
    with (
        dask.config.set({"intake_helio.limits.index-bytes": 1000}),
        pytest.raises(ContentTooLargeError, match=r"s3://trust/idx/x_2020.csv has more than 1000"),
    ):
        read_index("s3://trust/idx/", "x", [2020], storage_options=s3.storage_options)


def _deflated_zeros(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zeros (~1 KiB per MiB), built in milliseconds."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = bytes(1 << 20)
    first = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mib - 1) + c.flush(zlib.Z_FINISH)


def _zip_one(comp: bytes, usize: int, name: bytes = b"bomb_2020.csv") -> bytes:
    """A zip archive of one deflated member whose header says ``usize`` bytes (CRC unset)."""
    head = (20, 0, 8, 0, 0x21, 0, len(comp), usize, len(name))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *head, 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *head, 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(comp), 0)
    return local + comp + central + end


_CHILD = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from intake_helio.app.cli import main
    code = main(sys.argv[2:])
    # this process's peak resident memory (VmHWM: since exec, unlike ru_maxrss)
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
    print(f"PEAK {peak}", file=sys.stderr)
    sys.exit(code)
    """
)
AS_LIMIT = 2 * 2**30


def _run_limited(*argv: str) -> tuple[int, list[str], int]:
    """Run the CLI in a child under an address-space limit: (code, error lines, peak RSS)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (Linux) to measure the child's peak memory")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(AS_LIMIT), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    peak = int(next(line.split()[1] for line in lines if line.startswith("PEAK ")))
    return proc.returncode, [line for line in lines if not line.startswith("PEAK ")], peak


@pytest.mark.slow
def test_hostile_sizes_in_a_memory_limited_child(web):
    a, _ = web
    bomb = _zip_one(_deflated_zeros(3072), 3 * 2**30)  # ~3 MB expanding to 3 GiB
    liar = _zip_one(_deflated_zeros(3072), 1024)  # the same, whose header says 1 KiB
    assert len(bomb) < 4_000_000
    root = a.url + "/bkt/"
    entries = [
        dataset_entry("bomb", index="./idx/", indextype="csv-zip"),
        dataset_entry("liar", index="./lie/", indextype="csv-zip"),
    ]
    a.put("/bkt/catalog.json", _catalog(root, entries))
    a.put("/bkt/idx/bomb_2020.csv.zip", bomb)
    a.put("/bkt/lie/liar_2020.csv.zip", liar)
    a.put("/endless/catalog.json", Endless())
    span = ["--start", "2020-01-01", "--stop", "2020-02-01"]

    code, err, peak = _run_limited("files", root, "bomb", *span)
    assert code == 4 and len(err) == 1, err
    assert err[0].startswith("intake-helio: unexpected data: ") and "bomb_2020.csv.zip" in err[0]
    assert "expands past 536870912 bytes (its header says 3221225472 bytes)" in err[0]
    assert peak < 600 * 2**20, peak

    code, err, peak = _run_limited("files", root, "liar", *span)
    assert code == 4 and len(err) == 1 and "not a readable zip archive" in err[0], err
    assert peak < 600 * 2**20, peak

    code, err, peak = _run_limited("ls", a.url + "/endless/")
    assert code == 4 and len(err) == 1, err
    assert "/endless/catalog.json has more than 67108864 bytes" in err[0]
    assert peak < 800 * 2**20, peak


# --------------------------------------------------------------------------- time
def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_server_that_never_answers_fails_within_the_timeout(capsys):
    quick = {
        "intake_helio.timeouts.connect": 1,
        "intake_helio.timeouts.read": 1,
        "intake_helio.timeouts.attempts": 1,
    }
    creds = ["--storage-option", "key=k", "--storage-option", "secret=s"]
    with SilentServer() as silent, dask.config.set(quick):
        for argv, url in [
            (["ls", silent.url + "/bkt/"], silent.url + "/bkt/catalog.json"),
            (["ls", "s3://bkt/", "--endpoint-url", silent.url, *creds], "s3://bkt/catalog.json"),
        ]:
            t0 = time.perf_counter()
            assert main(argv) == 1
            elapsed = time.perf_counter() - t0
            line = _one_line(capsys)
            assert url in line and "did not answer within the timeouts" in line, line
            assert elapsed < 4, f"{argv}: {elapsed:.1f} s"
        assert silent.accepted >= 2


@pytest.mark.parametrize(
    "argv, url",
    [
        (["ls", "http://127.0.0.1:1/"], "http://127.0.0.1:1/catalog.json"),
        (["ls", "http://no-such-host.invalid/"], "http://no-such-host.invalid/catalog.json"),
        (["ls", "s3://bkt/", "--endpoint-url", "http://127.0.0.1:1"], "s3://bkt/catalog.json"),
    ],
)
def test_refused_connections_and_unknown_hosts_fail_fast(capsys, argv, url):
    t0 = time.perf_counter()
    assert main([*argv, "--storage-option", "key=k", "--storage-option", "secret=s"]) == 1
    elapsed = time.perf_counter() - t0
    line = _one_line(capsys)
    assert url in line and "cannot read bucket catalog" in line, line
    assert elapsed < 4, f"{elapsed:.1f} s with the default timeouts and attempts"


# --------------------------------------------------------------------------- credentials
def test_missing_credentials_have_their_own_error(s3, monkeypatch, capsys):
    fs = s3.filesystem()
    fs.mkdir("trust")
    fs.pipe_file(
        "trust/catalog.json", _catalog("s3://trust/", [dataset_entry("x", index="./i/")]).encode()
    )
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    so = {"endpoint_url": s3.endpoint_url}
    with pytest.raises(MissingCredentialsError, match="^no credentials: cannot read bucket"):
        ih.open_bucket("s3://trust/", so)
    with pytest.raises(PermissionError, match="no credentials: cannot read index file"):
        read_index("s3://trust/i/", "x", [2020], storage_options=so)
    assert ih.Reason.NO_CREDENTIALS == "no credentials"
    assert main(["ls", "s3://trust/", "--endpoint-url", s3.endpoint_url]) == 2
    assert "no credentials" in _one_line(capsys)


def test_frames_read_without_credentials_say_so(s3, monkeypatch):
    fs = s3.filesystem()
    fs.mkdir("creds")
    fs.pipe_file("creds/f0.fits", _tiny_fits())
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    so = {"endpoint_url": s3.endpoint_url}
    fs_nocreds, path = filesystem("s3://creds/f0.fits", so)
    with pytest.raises(FrameReadError) as info:
        read_frame(fs_nocreds, path)
    assert info.value.reason is ih.Reason.NO_CREDENTIALS, info.value
    assert "none were found" in str(info.value) and "anon=True" in str(info.value)
    files = pd.DataFrame({"start": [pd.Timestamp("2020-01-01")], "datakey": ["s3://creds/f0.fits"]})
    with pytest.raises(ih.HelioError, match="no credentials"):
        ih.open_frames(files, storage_options=so, on_error="nan")


def test_an_s3_url_carrying_credentials_is_refused_masked(s3, capsys):
    url = f"s3://AKIAKEY:{CANARY}@bucket/"
    with pytest.raises(ih.HelioError) as info:
        ih.open_bucket(url, s3.storage_options)
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "s3://***@bucket/" in text and "storage_options key= and secret=" in text, text
    assert CANARY not in text and CANARY not in repr(info.value.__cause__)
    assert main(["ls", url, "--endpoint-url", s3.endpoint_url]) == 2
    err = capsys.readouterr().err
    assert "s3://***@bucket/" in err and CANARY not in err


def _tiny_fits() -> bytes:
    hdu = fits.PrimaryHDU(np.arange(64, dtype=np.float32).reshape(8, 8))
    hdu.header["EXPTIME"] = 1.0
    buf = fits.HDUList([hdu])
    import io

    out = io.BytesIO()
    buf.writeto(out)
    return out.getvalue()


def test_credentials_in_urls_are_masked_everywhere(web, recwarn, tmp_path):
    intake = pytest.importorskip("intake")
    a, _ = web
    host = a.url.split("://")[1]
    root = f"http://reader:{CANARY}@{host}/bkt/"
    key = f"http://reader:{CANARY}@{host}/bkt/data/f0.fits"
    rows = [["2020-01-01T00:00:00Z", "2020-01-01T00:04:00Z", key, "2880"]]
    entries = [dataset_entry("aia", index="./idx/"), dataset_entry("bad id!", index="./idx/")]
    a.put("/bkt/catalog.json", _catalog(root, entries))
    a.put("/bkt/idx/aia_2020.csv", index_csv(rows))
    a.put("/bkt/data/f0.fits", _tiny_fits())
    registry = {"version": "1", "registry": [{"endpoint": root, "name": "mine"}]}
    a.put("/reg.json", json.dumps(registry))

    reg = ih.open_registry(f"http://reader:{CANARY}@{host}/reg.json")
    bucket = reg.open_bucket("mine")
    ds = bucket["aia"]
    frames = ds.to_dataarray("2020-01-01", "2020-01-02")
    shown = [repr(reg), repr(reg.endpoints), repr(bucket), repr(ds), repr(bucket.datasets)]
    shown += [frames.attrs, bucket.search("aia").to_dataframe().to_string()]
    shown += [str(w.message) for w in recwarn]
    for call in (
        lambda: bucket["nope"],
        lambda: bucket["aia"].files("2020-02-01", "2020-01-01"),
        lambda: ih.open_bucket(root.replace("/bkt/", "/none/")),
        lambda: ih.open_registry(f"http://reader:{CANARY}@127.0.0.1:1/reg.json"),
        lambda: read_index(root + "nowhere/", "aia", [2020], errors="report"),
    ):
        try:
            call()
        except Exception as exc:  # every error a user could see, with its chain's text
            chain: BaseException | None = exc
            while chain is not None:  # what a traceback prints
                shown += [str(chain), repr(chain)]
                chain = chain.__cause__ or (
                    None if chain.__suppress_context__ else chain.__context__
                )
    # intake output: the arguments pass through io.storage.redact, which masks URLs (the
    # catalog's *name*, set by the app layer from the endpoint, is that layer's to mask)
    cat = intake.open_helio_bucket(endpoint=root)
    described = cat.describe()
    shown += [cat.yaml().split("args:", 1)[1], str(described["args"])]
    # intake 2 readers: reprs, catalog YAML; they still read with the real URL
    r2 = ih.HelioBucketReader(root)
    cat2 = r2.read()
    frames2 = cat2["aia"](start="2020-01-01", stop="2020-01-02").read()
    assert frames2.sizes["time"] == 1
    cat2.to_yaml_file(str(tmp_path / "cat.yaml"))
    shown += [repr(r2), repr(cat2), repr(cat2["aia"]), (tmp_path / "cat.yaml").read_text()]
    shown += [repr(ih.HelioFramesReader(root, "aia")), str(cat2.metadata)]
    # control: the password was really used (basic auth), and the masked form is shown
    assert any(r.headers.get("authorization", "").startswith("Basic ") for r in a.requests)
    assert any("http://***@" in str(s) for s in shown)
    leaks = [s for s in shown if CANARY in str(s)]
    assert leaks == []
