"""Lazy frames (issue 3) against the real local S3 server.

Every value is compared with what astropy reads from the same file; requests are
counted at a real HTTP proxy in front of the server (intake_helio.testing.fault_proxy).
"""

from __future__ import annotations

import io
import pickle

import dask
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
from intake_helio.frames.build import open_frames, read_headers
from intake_helio.testing.aia import frame_bytes
from intake_helio.testing.fault_proxy import FaultProxy, FaultRule
from tests.builders import loopback_cluster

BUCKET = "frames-s3"
RNG = np.random.default_rng(7)


def _header(i: int) -> fits.Header:
    h = fits.Header()
    h["EXPTIME"] = 2.0 + 0.25 * i
    h["T_OBS"] = f"2020-02-17T00:{i:02d}:01.57Z"
    h["QUALITY"] = i % 3
    h["WAVELNTH"] = 94
    h["CRPIX1"], h["CRPIX2"] = 32.5, 24.5
    h["CDELT1"] = h["CDELT2"] = 0.6
    h["CTYPE1"], h["CTYPE2"] = "HPLN-TAN", "HPLT-TAN"
    h["CUNIT1"] = h["CUNIT2"] = "arcsec"
    h["RSUN_OBS"] = 975.0
    return h


def rice_frame(i: int, shape=(48, 64), tile=None) -> bytes:
    data = RNG.poisson(200 + 10 * i, shape).astype(np.int16)
    data[0, :3] = -32768
    h = _header(i)
    h["BLANK"] = -32768
    comp = fits.CompImageHDU(data, h, compression_type="RICE_1", tile_shape=tile or (1, shape[1]))
    return frame_bytes(fits.HDUList([fits.PrimaryHDU(), comp]))


KINDS = {
    "rice_row_tiles": lambda i: rice_frame(i),
    "rice_whole_tile": lambda i: rice_frame(i, tile=(48, 64)),
    "float_primary": lambda i: frame_bytes(
        fits.HDUList([fits.PrimaryHDU(RNG.normal(100, 5, (48, 64)), _header(i))])
    ),
    "gzip1": lambda i: frame_bytes(
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.CompImageHDU(
                    RNG.poisson(50, (48, 64)).astype(np.int16),
                    _header(i),
                    compression_type="GZIP_1",
                    tile_shape=(16, 64),
                ),
            ]
        )
    ),
}


def astropy_frame(raw: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(raw)) as hdul:
        hdu = next(h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2)
        return np.asarray(hdu.data, dtype=np.float32)


def publish(s3, files: dict[str, bytes]) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """Upload ``files`` (name -> bytes, in time order) and return their file list."""
    fs = s3.filesystem()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    t = pd.date_range("2020-02-17", periods=len(files), freq="4min")
    keys = []
    for name, raw in files.items():
        fs.pipe_file(f"{BUCKET}/{name}", raw)
        keys.append(f"s3://{BUCKET}/{name}")
    df = pd.DataFrame(
        {
            "start": t,
            "stop": t + pd.Timedelta("4min"),
            "datakey": keys,
            "filesize": [len(r) for r in files.values()],
        }
    )
    return df, {k: r for k, r in zip(keys, files.values(), strict=True)}


@pytest.fixture
def rice(s3):
    files = {f"f{i:02d}.fits": rice_frame(i) for i in range(6)}
    df, raw = publish(s3, files)
    return s3, df, raw


def test_structure_coords_attrs_and_one_layer(rice):
    s3, df, _ = rice
    frames = open_frames(
        df,
        storage_options=s3.storage_options,
        attrs={"dataset": "aia_test", "title": "T", "endpoint": "s3://x/"},
    )
    assert frames.dims == ("time", "y", "x") and frames.shape == (6, 48, 64)
    assert frames.dtype == np.float32
    assert frames.chunks == ((1,) * 6, (48,), (64,))
    assert list(frames["time"].values) == list(df["start"].values)
    assert list(frames["datakey"].values) == list(df["datakey"])
    assert list(frames["filesize"].values) == list(df["filesize"])
    a = frames.attrs
    assert (a["dataset"], a["title"], a["endpoint"], a["units"]) == (
        "aia_test",
        "T",
        "s3://x/",
        "DN",
    )
    assert a["CRPIX1"] == 32.5 and a["CTYPE2"] == "HPLT-TAN" and a["RSUN_OBS"] == 975.0
    assert a["WAVELNTH"] == 94 and a["CDELT1"] == 0.6 and a["CUNIT1"] == "arcsec"
    graph = frames.data.__dask_graph__()
    assert len(graph.layers) == 1 and len(graph) == 6  # one layer, one task per frame
    again = open_frames(df, storage_options=s3.storage_options)
    assert again.data.name == frames.data.name  # deterministic names


def test_nothing_read_before_compute_then_one_read_per_frame(rice):
    s3, df, raw = rice
    with FaultProxy(s3.endpoint_url) as proxy:
        so = dict(s3.storage_options, endpoint_url=proxy.endpoint_url)
        frames = open_frames(df, storage_options=so)
        mean = frames.mean(("y", "x"))
        by_key = proxy.stats["by_key"]
        touched = {k for k in by_key if k.startswith(f"/{BUCKET}/")}
        # only the probes of the first intake_helio.shape-probes (5) frames, one GET each
        probed = {f"/{BUCKET}/f{i:02d}.fits" for i in range(5)}
        assert touched == probed
        assert all(by_key[k]["requests"] == 1 for k in probed), by_key
        proxy.reset_stats()
        values = mean.compute(scheduler="threads")
        by_key = proxy.stats["by_key"]
    for key in df["datakey"]:
        assert by_key[key.replace("s3:/", "")]["requests"] == 1, by_key
    expected = [np.nanmean(astropy_frame(raw[k]), dtype=np.float64) for k in df["datakey"]]
    np.testing.assert_allclose(values.values, expected, rtol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_values_equal_astropy(s3, kind):
    files = {f"{kind}_{i}.fits": KINDS[kind](i) for i in range(3)}
    df, raw = publish(s3, files)
    frames = open_frames(df, storage_options=s3.storage_options).compute()
    for i, key in enumerate(df["datakey"]):
        np.testing.assert_allclose(
            frames.values[i], astropy_frame(raw[key]), rtol=1e-6, equal_nan=True
        )
    if kind == "rice_row_tiles":
        assert np.isnan(frames.values[:, 0, :3]).all()  # BLANK -> NaN


def test_cutout_and_row_bands_equal_full_frame(rice):
    s3, df, _ = rice
    so = s3.storage_options
    full = open_frames(df, storage_options=so).compute()
    cut = open_frames(df, storage_options=so, cutout={"y": slice(10, 30), "x": slice(5, 60)})
    assert cut.shape == (6, 20, 55) and cut.attrs["CRPIX1"] == 32.5 - 5
    np.testing.assert_array_equal(cut.values, full.values[:, 10:30, 5:60])
    assert list(cut["y"].values) == list(range(10, 30))
    bands = open_frames(df, storage_options=so, chunks={"y": 20})
    assert bands.chunks == ((1,) * 6, (20, 20, 8), (64,))
    assert len(bands.data.__dask_graph__()) == 6 * 3
    np.testing.assert_array_equal(bands.values, full.values)


def test_header_keys_are_lazy_coords_and_headers_table(rice):
    s3, df, _raw = rice
    frames = open_frames(
        df, storage_options=s3.storage_options, header_keys=("T_OBS", "EXPTIME", "QUALITY", "NOPE")
    )
    assert isinstance(frames["EXPTIME"].data, dask.array.Array)
    exptime = frames["EXPTIME"].values
    np.testing.assert_allclose(exptime, [2.0 + 0.25 * i for i in range(6)])
    assert list(frames["T_OBS"].values) == [f"2020-02-17T00:{i:02d}:01.57Z" for i in range(6)]
    assert list(frames["QUALITY"].values) == [i % 3 for i in range(6)]
    bucket_df = read_headers(df, ["EXPTIME", "T_OBS"], storage_options=s3.storage_options)
    assert list(bucket_df.columns) == ["start", "datakey", "EXPTIME", "T_OBS"]
    assert bucket_df["EXPTIME"].tolist() == [2.0 + 0.25 * i for i in range(6)]


def test_units_dn_per_second(rice):
    s3, df, _raw = rice
    dn = open_frames(df, storage_options=s3.storage_options).compute()
    dns = open_frames(df, storage_options=s3.storage_options, units="DN/s")
    assert dns.attrs["units"] == "DN/s"
    exptime = np.array([2.0 + 0.25 * i for i in range(6)], dtype=np.float32)
    np.testing.assert_allclose(dns.values, dn.values / exptime[:, None, None], rtol=1e-6)


def _no_image_hdu() -> bytes:
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(3.0))])
    return frame_bytes(fits.HDUList([fits.PrimaryHDU(), table]))


@pytest.fixture
def broken(s3):
    good = rice_frame(0)
    files = {
        "good0.fits": good,
        "empty.fits": b"",
        "notfits.fits": b"SIMPLE? no, this is a text file\n" * 200,
        "truncated.fits": good[: len(good) // 2],
        "notable.fits": _no_image_hdu(),
        "othershape.fits": rice_frame(1, shape=(40, 64)),
        "good1.fits": rice_frame(2),
    }
    df, raw = publish(s3, files)
    t = df["start"].iloc[-1] + pd.Timedelta("4min")
    missing = pd.DataFrame(
        {"start": [t], "stop": [t], "datakey": [f"s3://{BUCKET}/gone.fits"], "filesize": [2880]}
    )
    return s3, pd.concat([df, missing], ignore_index=True), raw


REASONS = [
    "ok",
    "empty file",
    "not FITS",
    "truncated",
    "no image HDU",
    "shape mismatch",
    "ok",
    "missing object",
]


def test_on_error_nan_keeps_a_reason_for_every_frame(broken):
    s3, df, raw = broken
    frames = open_frames(df, storage_options=s3.storage_options, on_error="nan")
    assert isinstance(frames["read_status"].data, dask.array.Array)
    result = frames.mean(("y", "x")).compute()
    assert list(result["read_status"].values) == REASONS
    values = result.values
    assert np.isnan(values[1:6]).all() and np.isnan(values[7])
    np.testing.assert_allclose(
        values[[0, 6]],
        [np.nanmean(astropy_frame(raw[df["datakey"][i]]), dtype=np.float64) for i in (0, 6)],
        rtol=1e-6,
    )
    table = result["read_status"].to_series()
    assert (table != "ok").sum() == 6  # the (datakey, reason) table a user gets


@pytest.mark.parametrize("row", [1, 3, 7])
def test_on_error_raise_names_datakey_and_cause(broken, row):
    s3, df, _ = broken
    frames = open_frames(df, storage_options=s3.storage_options)
    with pytest.raises(ih.FrameReadError) as err:
        frames.isel(time=row).compute()
    assert err.value.datakey == df["datakey"][row]
    assert err.value.reason == REASONS[row]
    assert df["datakey"][row] in str(err.value) and isinstance(err.value, OSError)


def test_transient_errors_are_retried(rice):
    s3, df, raw = rice
    key = "/" + df["datakey"][2].removeprefix("s3://")
    rules = [
        FaultRule("status", status=503, code="SlowDown", match=key, times=2),
        FaultRule("status", status=500, code="InternalError", match="f04", times=1),
    ]
    with FaultProxy(s3.endpoint_url, rules) as proxy:
        so = dict(s3.storage_options, endpoint_url=proxy.endpoint_url)
        values = open_frames(df, storage_options=so).mean(("y", "x")).compute()
        assert proxy.stats["faults"] == 3
    expected = [np.nanmean(astropy_frame(raw[k]), dtype=np.float64) for k in df["datakey"]]
    np.testing.assert_allclose(values.values, expected, rtol=1e-6)


@pytest.mark.parametrize("scheduler", ["threads", "processes", "distributed"])
def test_graph_pickles_and_runs_on_every_scheduler(rice, scheduler):
    s3, df, raw = rice
    frames = open_frames(df, storage_options=s3.storage_options, on_error="nan")
    pickle.loads(pickle.dumps(frames))  # no open handles or clients inside
    mean = frames.mean(("y", "x"))
    if scheduler == "distributed":
        from distributed import Client

        with loopback_cluster(workers=2) as cluster, Client(cluster):
            values = mean.compute()
    else:
        values = mean.compute(scheduler=scheduler)
    expected = [np.nanmean(astropy_frame(raw[k]), dtype=np.float64) for k in df["datakey"]]
    np.testing.assert_allclose(values.values, expected, rtol=1e-6)
    assert list(values["read_status"].values) == ["ok"] * 6


def test_dataset_to_dataarray_and_headers(s3):
    from intake_helio.testing.demo_data import write_demo_dataset

    demo = write_demo_dataset("s3://demo-frames/", s3.storage_options, frames=8, size=64, corrupt=0)
    ds = ih.open_bucket(demo.root, s3.storage_options)[demo.dataset_id]
    frames = ds.to_dataarray(demo.start, demo.stop)
    assert frames.attrs["dataset"] == demo.dataset_id and frames.attrs["endpoint"] == demo.root
    np.testing.assert_allclose(frames.mean(("y", "x")).values, demo.expected_mean, rtol=1e-6)
    heads = ds.headers(demo.start, demo.stop, ["WAVELNTH", "EXPTIME"])
    assert len(heads) == 8 and set(heads["WAVELNTH"]) == {94}


def test_bad_arguments_are_clear(rice):
    s3, df, _ = rice
    so = s3.storage_options
    with pytest.raises(ValueError, match="units='W'"):
        open_frames(df, storage_options=so, units="W")
    with pytest.raises(ValueError, match="on_error='skip'"):
        open_frames(df, storage_options=so, on_error="skip")
    with pytest.raises(ValueError, match=r"cutout\['y'\].*selects no pixels"):
        open_frames(df, storage_options=so, cutout={"y": slice(100, 200)})
    with pytest.raises(ValueError, match="file list is empty"):
        open_frames(df.iloc[:0], storage_options=so)
    with pytest.raises(ValueError, match="'start' and 'datakey'"):
        open_frames(df[["start"]], storage_options=so)
    with pytest.raises(ValueError, match="chunks"):
        open_frames(df, storage_options=so, chunks={"x": 3})
