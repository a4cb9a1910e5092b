"""``quality="good"``: frames flagged by their header ``QUALITY`` are skipped, never decoded.

A small AIA-like series in the local S3 server has one frame with ``QUALITY = 0x400`` whose
compressed tiles are also garbage (with ``quality=None`` it is ``"corrupt data"``, so a
``"quality flag 0x00000400"`` status proves its pixels were never decoded) and one frame
without a ``QUALITY`` card (good). Checked on every path that reads frames: the lazy
array (``on_error="nan"`` and ``"raise"``), ``ih.map_frames`` (built-ins, a function, a
cutout, a changed array), ``ih.irradiance``, ``ih.open_channels``, both intake drivers and
the ``irradiance`` / ``reduce`` commands.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
from intake_helio.app.cli import main
from intake_helio.base.reasons import Reason, reason_of
from intake_helio.fits import frame as ff
from intake_helio.intake import HelioFramesSource
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import job_argv

N = 6
FLAGGED = 2  # QUALITY = 0x400 and corrupt tiles
NO_KEY = 4  # no QUALITY card at all
FLAG = "quality flag 0x00000400"
FLAG_171 = "quality flag 0x80000000"  # the 171 Å channel's frame 1: QUALITY = -2**31
ROOT = "s3://helio-demo/"


def _rewrite(fs, key: str, quality=0, corrupt: bool = False) -> None:
    """Set (or with ``quality=None`` delete) QUALITY of ``key``, keeping its length.

    ``corrupt`` also overwrites the compressed tiles (the heap) with 0xFF bytes.
    """
    raw = bytearray(fs.cat_file(key))
    with fits.open(io.BytesIO(bytes(raw)), disable_image_compression=True) as hdul:
        info = hdul.fileinfo(1)
        header = hdul[1].header.copy()
    if quality is None:
        del header["QUALITY"]
    else:
        header["QUALITY"] = quality
    new = header.tostring().encode("ascii")
    assert len(new) == info["datLoc"] - info["hdrLoc"]
    raw[info["hdrLoc"] : info["datLoc"]] = new
    if corrupt:
        heap = info["datLoc"] + header.get("THEAP", header["NAXIS1"] * header["NAXIS2"])
        raw[heap : heap + header["PCOUNT"]] = b"\xff" * header["PCOUNT"]
    fs.pipe_file(key, bytes(raw))


@pytest.fixture
def series(s3):
    """(bucket, 94 Å DemoDataset, 171 Å DemoDataset) with the flagged frames written."""
    so = s3.storage_options
    a = write_demo_dataset(ROOT, so, frames=N, size=32, corrupt=0)
    b = write_demo_dataset(
        ROOT,
        so,
        frames=N,
        size=32,
        corrupt=0,
        dataset_id="aia_0171",
        wavelength=171,
        start=a.start + pd.Timedelta(seconds=3),
        seed=7,
    )
    fs = s3.filesystem()
    _rewrite(fs, a.datakeys[FLAGGED], quality=0x400, corrupt=True)
    _rewrite(fs, a.datakeys[NO_KEY], quality=None)
    _rewrite(fs, b.datakeys[1], quality=-(2**31))
    return ih.open_bucket(ROOT, so), a, b


def _frames(bucket, data, **kwargs):
    kwargs.setdefault("on_error", "nan")
    return bucket[data.dataset_id].to_dataarray(data.start, data.stop, **kwargs)


def _good(i: int) -> bool:
    return i != FLAGGED


def peak(data, header):
    """A science function: the brightest pixel and the frame's QUALITY (-1: no card)."""
    return {"peak": float(np.nanmax(data)), "qual": float(header.get("QUALITY", -1))}


# ----------------------------------------------------------------------------- lazy frames
def test_the_flagged_frame_gets_its_reason_without_being_decoded(series):
    bucket, a, _ = series
    every = _frames(bucket, a).mean(("y", "x")).compute()
    good = _frames(bucket, a, quality="good").mean(("y", "x")).compute()

    status = list(every["read_status"].values)
    assert status == ["ok"] * FLAGGED + ["corrupt data"] + ["ok"] * (N - FLAGGED - 1)
    status = list(good["read_status"].values)
    assert status == ["ok"] * FLAGGED + [FLAG] + ["ok"] * (N - FLAGGED - 1)
    assert reason_of(status[FLAGGED]) is Reason.QUALITY_FLAG
    assert np.isnan(good.values[FLAGGED])
    keep = [i for i in range(N) if _good(i)]
    np.testing.assert_array_equal(good.values[keep], every.values[keep])
    np.testing.assert_allclose(good.values[keep], np.array(a.expected_mean)[keep], rtol=1e-6)
    # the frame without QUALITY is good, and the default keeps today's behaviour
    assert status[NO_KEY] == "ok" and np.isfinite(good.values[NO_KEY])
    assert _frames(bucket, a).attrs == _frames(bucket, a, quality="good").attrs


def test_a_cutout_and_row_bands_check_the_header_before_their_tiles(series):
    bucket, a, _ = series
    for kwargs in ({"cutout": {"y": slice(8, 24)}}, {"chunks": {"y": 8}}):
        every = _frames(bucket, a, **kwargs)["read_status"].values
        good = _frames(bucket, a, quality="good", **kwargs)["read_status"].values
        assert every[FLAGGED] == "corrupt data", kwargs
        assert good[FLAGGED] == FLAG, kwargs
        assert [s for i, s in enumerate(good) if i != FLAGGED] == ["ok"] * (N - 1)


def test_on_error_raise_raises_the_quality_flag(series):
    bucket, a, _ = series
    frames = _frames(bucket, a, on_error="raise", quality="good")
    with pytest.raises(ih.FrameReadError, match=r"quality flag 0x00000400 \(header QUALITY=1024"):
        frames.isel(time=FLAGGED).compute()
    with pytest.raises(ih.FrameReadError) as info:
        frames.compute()
    assert info.value.reason == FLAG
    assert np.isfinite(frames.isel(time=NO_KEY).mean().compute())


def test_fits_readers_and_reasons(series, s3):
    _, a, b = series
    fs = s3.filesystem()
    path = a.datakeys[FLAGGED]
    for read in (ff.read_frame, ff.frame_sum):
        with pytest.raises(ih.FrameReadError) as info:
            read(fs, path, good_only=True)
        assert info.value.reason == FLAG
        assert ff.frame_error_reason(info.value) == FLAG
        with pytest.raises(ih.FrameReadError, match="corrupt data"):
            read(fs, path)
    with pytest.raises(ih.FrameReadError) as info:
        ff.read_frame(fs, b.datakeys[1], good_only=True, rows=slice(0, 4))
    assert info.value.reason == FLAG_171
    assert ff.read_frame(fs, a.datakeys[NO_KEY], good_only=True).shape == (32, 32)
    # a QUALITY that is not an integer cannot be vouched for: the bare reason
    _rewrite(fs, a.datakeys[0], quality="bad")
    with pytest.raises(ih.FrameReadError, match="is a str, not an integer") as info:
        ff.read_frame(fs, a.datakeys[0], good_only=True)
    assert (
        info.value.reason == "quality flag" and reason_of(info.value.reason) is Reason.QUALITY_FLAG
    )
    _rewrite(fs, a.datakeys[0], quality=0.0)  # a real that is a whole number: its value
    assert ff.read_frame(fs, a.datakeys[0], good_only=True).shape == (32, 32)


# ----------------------------------------------------------------------------- engine
def test_map_frames_builtins_and_a_function(series):
    bucket, a, _ = series
    every = ih.map_frames(_frames(bucket, a), ["mean", "max", "count", peak], progress=False)
    good = ih.map_frames(
        _frames(bucket, a, quality="good"), ["mean", "max", "count", peak], progress=False
    )
    assert every["status"].values[FLAGGED] == "corrupt data"
    assert list(good["status"].values) == ["ok"] * FLAGGED + [FLAG] + ["ok"] * (N - FLAGGED - 1)
    keep = [i for i in range(N) if _good(i)]
    for name in ("mean", "max", "peak", "qual"):
        assert np.isnan(good[name].values[FLAGGED]), name
        np.testing.assert_array_equal(good[name].values[keep], every[name].values[keep])
    assert good["qual"].values[NO_KEY] == -1 and good["qual"].values[0] == 0
    # the built-ins alone take the fast path (frame_stats), a function alone read_frame
    for func in ("mean", peak):
        one = ih.map_frames(_frames(bucket, a, quality="good"), func, progress=False)
        assert one["status"].values[FLAGGED] == FLAG
        assert one["status"].values[NO_KEY] == "ok"
    # a window (ranged reads) and a changed array (the generic path, read_status)
    window = _frames(bucket, a, quality="good").isel(y=slice(4, 20))
    assert ih.map_frames(window, "mean", progress=False)["status"].values[FLAGGED] == FLAG
    changed = ih.map_frames(_frames(bucket, a, quality="good") * 2, "mean", progress=False)
    assert changed["status"].values[FLAGGED] == FLAG
    np.testing.assert_allclose(changed["mean"].values[keep], 2 * every["mean"].values[keep])


def test_irradiance(series):
    bucket, a, _ = series
    every = ih.irradiance(_frames(bucket, a), progress=False)
    good = ih.irradiance(_frames(bucket, a, quality="good"), progress=False)
    assert every["status"].values[FLAGGED] == "corrupt data"
    assert good["status"].values[FLAGGED] == FLAG
    assert np.isnan(good["irradiance"].values[FLAGGED])
    keep = [i for i in range(N) if _good(i)]
    np.testing.assert_array_equal(good["irradiance"].values[keep], every["irradiance"].values[keep])
    np.testing.assert_allclose(
        good["irradiance"].values[keep], np.array(a.expected_mean)[keep], rtol=1e-6
    )


def test_open_channels(series):
    bucket, a, _ = series
    ids = ["aia_0094", "aia_0171"]
    every = ih.irradiance(ih.open_channels(bucket, ids, a.start, a.stop), progress=False)
    chans = ih.open_channels(bucket, ids, a.start, a.stop, quality="good")
    assert chans["aia_0171_read_status"].values[1] == FLAG_171
    good = ih.irradiance(chans, progress=False)
    status = good["status"].transpose("channel", "time").values
    assert list(status[0]) == ["ok"] * FLAGGED + [FLAG] + ["ok"] * (N - FLAGGED - 1)
    assert list(status[1]) == ["ok", FLAG_171] + ["ok"] * (N - 2)
    assert every["status"].sel(channel="aia_0171").values[1] == "ok"
    ok = good["status"] == "ok"
    np.testing.assert_array_equal(
        good["irradiance"].where(ok).values, every["irradiance"].where(ok).values
    )
    with pytest.raises(ih.HelioError, match="quality='best'"):
        ih.open_channels(bucket, ids, a.start, a.stop, quality="best")


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("value", ["best", "GOOD", 1, True])
def test_invalid_quality_is_refused_with_what_to_do(series, s3, value):
    bucket, a, _ = series
    df = bucket["aia_0094"].files(a.start, a.stop)
    calls = [
        lambda: ih.open_frames(df, storage_options=s3.storage_options, quality=value),
        lambda: _frames(bucket, a, quality=value),
        lambda: HelioFramesSource(ROOT, "aia_0094", quality=value),
        lambda: ih.HelioFramesReader(ROOT, "aia_0094", quality=value),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"quality=.*expected 'good'.* or None") as info:
            call()
        assert isinstance(info.value, ih.HelioError)
        assert repr(value) in str(info.value)


def test_intake_drivers(series, s3):
    _, a, _ = series
    so = s3.storage_options
    window = {"start": a.start, "stop": a.stop, "on_error": "nan", "quality": "good"}
    v1 = HelioFramesSource(ROOT, "aia_0094", storage_options=so, **window).to_dask()
    v2 = ih.HelioFramesReader(ROOT, "aia_0094", storage_options=so, **window)
    assert v2.kwargs["quality"] == "good"
    for frames in (v1, v2.read()):
        assert frames["read_status"].values[FLAGGED] == FLAG
        assert frames["read_status"].values[NO_KEY] == "ok"


# ----------------------------------------------------------------------------- CLI


def _argv(command, s3, data, out, *extra, datasets=("aia_0094",)):
    return job_argv(
        command,
        ROOT,
        datasets,
        data.start,
        data.stop,
        out,
        *extra,
        endpoint_url=s3.endpoint_url,
        key=s3.key,
        secret=s3.secret,
    )


def test_cli_irradiance_counts_the_flagged_frames(series, s3, tmp_path, cli):
    _, a, _ = series
    code, out, err = cli(_argv("irradiance", s3, a, tmp_path / "all"))
    assert code == 3, err
    assert "failed (corrupt data): 1" in out and "quality flag" not in out
    code, out, err = cli(_argv("irradiance", s3, a, tmp_path / "good", "--quality", "good"))
    assert code == 3, err
    assert f"frames: {N}  ok: {N - 1}  failed: 1" in out
    assert f"failed ({FLAG}): 1" in out and "corrupt data" not in out
    table = pd.read_csv(tmp_path / "good" / "irradiance.csv", keep_default_na=False)
    assert table["status"].tolist()[FLAGGED] == FLAG
    # resuming with another quality is another run: refused
    code, _, err = cli(_argv("irradiance", s3, a, tmp_path / "good", "--resume"))
    assert code == 2 and "quality" in err
    code, out, err = cli(
        _argv(
            "irradiance",
            s3,
            a,
            tmp_path / "both",
            "--quality",
            "good",
            datasets=(
                "aia_0094",
                "aia_0171",
            ),
        )
    )
    assert code == 3, err
    assert f"failed ({FLAG}): 1" in out and f"failed ({FLAG_171}): 1" in out


def test_cli_reduce_counts_the_flagged_frames(series, s3, tmp_path, cli, capsys):
    _, a, _ = series
    argv = _argv("reduce", s3, a, tmp_path, "--stat", "max", "--format", "csv", "--quality", "good")
    code, out, err = cli(argv)
    assert code == 3, err
    assert f"frames: {N}  ok: {N - 1}  failed: 1" in out
    assert f"failed ({FLAG}): 1" in out
    table = pd.read_csv(tmp_path / "reduce.csv", keep_default_na=False)
    assert table["status"].tolist()[FLAGGED] == FLAG
    with pytest.raises(SystemExit) as info:  # argparse: usage and one error line
        main([*argv[:-1], "best"])
    assert info.value.code == 2
    assert "--quality: invalid choice: 'best' (choose from 'good')" in capsys.readouterr().err
