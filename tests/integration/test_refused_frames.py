"""Index rows whose datakey the URL policy refuses: frames with a reason, never requested.

A real bucket on the local S3 server whose index names, among its good rows, a ``file://``
path and an ``http://`` URL on a loopback server (a real HTTP server counting every request
it receives). With ``on_error="nan"`` those rows are frames with NaN and the status
``"URL not allowed: ..."`` through ``ih.irradiance``, ``ih.map_frames`` (built-ins and a
user function), the generic path, header coordinates, ``ih.to_map`` and the CLI (exit 3,
listed in the CSV); with ``on_error="raise"`` the index error stays as it was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.http_server import LocalHTTP
from tests.builders import demo_job_argv, rewrite_datakeys

FRAMES = 8
REFUSED_AT = (2, 5)


@pytest.fixture
def refused_bucket(s3):
    data = write_demo_dataset(
        "s3://helio-refused/", s3.storage_options, frames=FRAMES, size=32, corrupt=0
    )
    server = LocalHTTP({"/aia.fits": b"SIMPLE  =                    T"}).start()
    targets = {REFUSED_AT[0]: "file:///etc/hostname", REFUSED_AT[1]: f"{server.url}/aia.fits"}
    rewrite_datakeys(s3.filesystem(), "helio-refused/sdo/aia/registries", targets)
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options, cache=False)
    yield bucket, data, server, s3
    server.stop()


def _statuses(values) -> list[str]:
    return [str(s) for s in np.asarray(values)]


def _check(statuses: list[str]) -> None:
    for i, status in enumerate(statuses):
        if i in REFUSED_AT:
            assert status.startswith("URL not allowed: datakey"), status
        else:
            assert status == "ok", (i, status)


def test_refused_rows_are_frames_with_their_reason(refused_bucket):
    bucket, data, server, _ = refused_bucket
    ds = bucket[data.dataset_id]
    frames = ds.to_dataarray(data.start, data.stop, on_error="nan", header_keys=["EXPTIME"])
    assert frames.sizes["time"] == FRAMES
    keys = list(frames["datakey"].values)
    assert keys[REFUSED_AT[0]] == "file:///etc/hostname"

    result = ih.irradiance(frames)
    _check(_statuses(result["status"].values))
    valued = np.isfinite(result["irradiance"].values)
    assert list(np.flatnonzero(~valued)) == list(REFUSED_AT)
    good = [i for i in range(FRAMES) if i not in REFUSED_AT]
    np.testing.assert_allclose(
        result["irradiance"].values[good], np.asarray(data.expected_mean)[good], rtol=1e-6
    )

    def peak(d, header):
        return float(np.nanmax(d))

    stats = ih.map_frames(frames, ["max", peak, "disk_mean"])
    _check(_statuses(stats["status"].values))

    generic = ih.map_frames(frames * 2, ["mean"])  # arithmetic: the generic path
    _check(_statuses(generic["status"].values))

    computed = frames.mean(("y", "x")).compute()
    _check(_statuses(computed["read_status"].values))
    assert np.isnan(computed["EXPTIME"].values[list(REFUSED_AT)]).all()
    assert np.isfinite(computed["EXPTIME"].values[good]).all()

    with pytest.raises(ih.FrameReadError, match="URL not allowed"):
        ih.to_map(frames, REFUSED_AT[1])
    assert ih.to_map(frames, 0).data.shape == (32, 32)

    assert server.requests == []  # the loopback URL was never requested


def test_open_channels_keeps_refused_rows_as_frames(refused_bucket):
    bucket, data, server, _ = refused_bucket
    chans = ih.open_channels(bucket, [data.dataset_id], data.start, data.stop)
    result = ih.irradiance(chans)
    _check(_statuses(result["status"].values.reshape(-1)))
    assert server.requests == []


def test_on_error_raise_keeps_the_index_error(refused_bucket):
    bucket, data, server, _ = refused_bucket
    with pytest.raises(ih.IndexParseError, match="URL not allowed"):
        bucket[data.dataset_id].to_dataarray(data.start, data.stop)
    # and files() lists them only when asked
    with pytest.raises(ih.IndexParseError):
        bucket[data.dataset_id].files(data.start, data.stop)
    df = bucket[data.dataset_id].files(data.start, data.stop, keep_refused=True)
    assert (df["refused"] != "").sum() == len(REFUSED_AT)
    assert server.requests == []


def test_the_cli_lists_refused_frames_and_exits_3(refused_bucket, tmp_path, cli):
    _, data, server, s3 = refused_bucket
    code, out, err = cli(
        demo_job_argv(
            "irradiance",
            data,
            tmp_path,
            "--no-cache",
            endpoint_url=s3.endpoint_url,
        )
    )
    assert code == 3, (out, err)
    table = pd.read_csv(tmp_path / "irradiance.csv", keep_default_na=False)
    _check(list(table["status"]))
    assert "URL not allowed" in out + err
    assert server.requests == []


def test_a_content_column_named_refused_decides_nothing(s3):
    """An index's own ``refused`` column is kept under another name, never as a reason."""
    data = write_demo_dataset("s3://helio-col/", s3.storage_options, frames=4, size=32, corrupt=0)
    fs = s3.filesystem()
    index = next(p for p in fs.find("helio-col/sdo/aia/registries") if p.endswith(".csv"))
    lines = fs.cat_file(index).decode().splitlines()
    lines = [lines[0] + ", refused"] + [line + ',"skip me"' for line in lines[1:]]
    fs.pipe_file(index, ("\n".join(lines) + "\n").encode())
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options, cache=False)
    frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop, on_error="nan")
    result = ih.irradiance(frames)
    assert list(result["status"].values) == ["ok"] * 4
    df = bucket[data.dataset_id].files(data.start, data.stop, keep_refused=True)
    assert list(df["refused_column"]) == ["skip me"] * 4 and list(df["refused"]) == [""] * 4
