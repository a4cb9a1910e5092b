"""Degradation-corrected irradiance against aiapy itself (no network, no sockets).

The correction table is the one aiapy ships in its test data; the reference is what a
user does by hand: ``aiapy.calibrate.correct_degradation(sunpy.map.Map(file), ...)`` then
the mean, frame by frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.base.errors import HelioError
from intake_helio.base.reasons import Reason, reason_of
from intake_helio.calibrate import (
    CalibrationError,
    CorrectionTableNotFoundError,
    correction_table,
    degradation_model,
)
from intake_helio.testing.aia import frame_bytes, make_aia_frame

aiapy = pytest.importorskip("aiapy")
sunpy_map = pytest.importorskip("sunpy.map")
from aiapy.calibrate import correct_degradation, degradation  # noqa: E402
from aiapy.calibrate.util import get_correction_table  # noqa: E402

TABLE = Path(aiapy.__file__).parent / "tests" / "data" / "aia_V8_20171210_050627_response_table.txt"
#: Dates across the table's epochs (2010-03-24 to 2030), one before its first.
DATES = ["2010-06-01T00:00", "2011-07-15T12:30", "2013-03-01T06:00", "2016-09-20T18:00",
         "2020-01-01T00:04"]  # fmt: skip
EARLY = "2010-01-01T00:00"


def _files(tmp_path, wavelength: int, dates, tag: str):
    """Frames of ``wavelength`` at ``dates`` in memory:// and as local files (for sunpy)."""
    fs = fsspec.filesystem("memory")
    rows = []
    for i, t in enumerate(dates):
        raw = frame_bytes(
            make_aia_frame(t, size=32, seed=i, exptime=2.0 + 0.3 * i, wavelength=wavelength)
        )
        path = f"/calib-{tag}/f{i}.fits"
        fs.pipe_file(path, raw)
        local = tmp_path / f"{tag}-{i}.fits"
        local.write_bytes(raw)
        start = pd.Timestamp(t)
        rows.append({"start": start, "stop": start + pd.Timedelta(seconds=3),
                     "datakey": f"memory://{path}", "local": str(local)})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_correction_table(TABLE)


def _by_hand(path: str, table, dn_per_s: bool) -> tuple[float, float]:
    """aiapy on a sunpy Map of the file: the corrected mean (and max), DN or DN/s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = correct_degradation(sunpy_map.Map(path), correction_table=table)
    data = np.asarray(m.data, dtype=np.float64)
    scale = float(m.exposure_time.to_value("s")) if dn_per_s else 1.0
    return float(np.nanmean(data)) / scale, float(np.nanmax(data)) / scale


@pytest.mark.parametrize("wavelength", [94, 171])
@pytest.mark.parametrize("normalize", [True, False])
def test_corrected_irradiance_equals_aiapy_on_maps(tmp_path, table, wavelength, normalize):
    df = _files(tmp_path, wavelength, DATES, f"eq{wavelength}{normalize}")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")
    res = ih.irradiance(
        frames, normalize=normalize, progress=False, correct_degradation=True,
        correction_table=TABLE,
    )  # fmt: skip
    plain = ih.irradiance(frames, normalize=normalize, progress=False)
    assert list(res["status"].values) == ["ok"] * len(DATES)
    want = np.array([_by_hand(p, table, normalize)[0] for p in df["local"]])
    np.testing.assert_allclose(res["irradiance"].values, want, rtol=1e-6)
    # the correction is not a no-op: the factors differ from 1 by tens of percent
    factors = plain["irradiance"].values / res["irradiance"].values
    np.testing.assert_allclose(factors, [
        degradation(wavelength * ih_u(), t, correction_table=table).value[0]
        for t in _times(df)
    ], rtol=1e-6)  # fmt: skip
    assert factors.min() < 0.9
    unit = "DN/s" if normalize else "DN"
    assert res["irradiance"].attrs["units"] == f"{unit}, corrected for degradation"
    assert TABLE.name in res.attrs["correction_table"]
    assert "VER_NUM 8" in res.attrs["correction_table"]
    assert f"aiapy {aiapy.__version__}" in res.attrs["correction_table"]


def ih_u():
    import astropy.units as u

    return u.angstrom


def _times(df):
    from astropy.time import Time

    return [Time(t.isoformat()) for t in df["start"]]


def test_map_frames_functions_get_corrected_data(tmp_path, table):
    df = _files(tmp_path, 94, DATES, "func")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")

    def peak(data, header):
        return float(np.nanmax(data))

    out = ih.map_frames(
        frames, ["mean", "max", "count", peak], normalize=True, progress=False,
        correct_degradation=True, correction_table=TABLE,
    )  # fmt: skip
    hand = [_by_hand(p, table, True) for p in df["local"]]
    np.testing.assert_allclose(out["mean"].values, [h[0] for h in hand], rtol=1e-6)
    np.testing.assert_allclose(out["max"].values, [h[1] for h in hand], rtol=1e-6)
    np.testing.assert_allclose(out["peak"].values, [h[1] for h in hand], rtol=1e-6)
    counts = ih.map_frames(frames, ["count"], progress=False)["count"].values
    np.testing.assert_array_equal(out["count"].values, counts)  # counts are not scaled
    assert out["mean"].attrs["units"] == "DN/s, corrected for degradation"
    # the generic path (an array changed by arithmetic) applies the same factors
    gen = ih.map_frames(
        frames * 1.0, ["mean"], normalize=True, progress=False, correct_degradation=True,
        correction_table=TABLE,
    )  # fmt: skip
    np.testing.assert_allclose(gen["mean"].values, [h[0] for h in hand], rtol=1e-6)


def test_frames_outside_the_tables_epochs_get_a_reason(tmp_path):
    df = _files(tmp_path, 94, [EARLY, DATES[1]], "early")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")
    res = ih.irradiance(frames, progress=False, correct_degradation=True, correction_table=TABLE)
    first, second = (str(s) for s in res["status"].values)
    assert reason_of(first) == Reason.NO_CORRECTION
    assert "2010-01-01" in first and "outside the table's epochs" in first
    assert second == "ok" and np.isnan(res["irradiance"].values[0])


def test_the_model_follows_aiapy_over_the_mission(table):
    model = degradation_model(TABLE, [94, 171])
    rng = np.random.default_rng(1)
    times = np.datetime64("2010-05-13") + (rng.random(200) * 12.6 * 365 * 86400).astype(
        "timedelta64[s]"
    )
    from astropy.time import Time

    for channel in (94, 171):
        ref = degradation(channel * ih_u(), Time(times), correction_table=table).value
        np.testing.assert_allclose(model.factors(channel, times), ref, rtol=1e-8)
    assert np.isnan(model.factors(94, [np.datetime64("2009-01-01")])[0])


def test_a_channel_not_in_the_table_is_refused_in_one_line(tmp_path, table):
    df = _files(tmp_path, 171, DATES[:1], "nochan")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")
    without = table[table["WAVE_STR"] != "171_THIN"]
    with pytest.raises(CalibrationError) as info:
        ih.irradiance(frames, progress=False, correct_degradation=True, correction_table=without)
    msg = str(info.value)
    assert "171" in msg and "not in the correction table" in msg and "\n" not in msg


def test_bad_tables_give_one_clear_line(tmp_path):
    with pytest.raises(CorrectionTableNotFoundError) as info:
        correction_table(tmp_path / "nope.txt")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, HelioError)
    assert "nope.txt" in str(info.value) and "aia_V*_response_table.txt" in str(info.value)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("DATE WAVE_STR T_START\n2010-01-01 94_THIN 2010-01-01\n")
    with pytest.raises(CalibrationError) as info:
        correction_table(wrong)
    msg = str(info.value)
    assert "EFF_AREA" in msg and "T_STOP" in msg and "wrong.txt" in msg and "\n" not in msg
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(os.urandom(2000))
    with pytest.raises(CalibrationError) as info:
        correction_table(garbage)
    assert "garbage.txt" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CalibrationError, match="expected a file path"):
        correction_table(42)


def test_keywords_are_checked_before_any_read(tmp_path):
    df = _files(tmp_path, 94, DATES[:1], "kw")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")
    with pytest.raises(TypeError, match="correct_degradation='yes'"):
        ih.irradiance(frames, progress=False, correct_degradation="yes")
    with pytest.raises(TypeError, match="correct_degradation=False"):
        ih.map_frames(frames, "mean", progress=False, correction_table=TABLE)


def test_to_map_level_15_equals_aiapy_register(tmp_path):
    from aiapy.calibrate import register

    fs = fsspec.filesystem("memory")
    raw = frame_bytes(make_aia_frame("2016-09-20T18:00", size=64, seed=3, blank_fraction=0.0))
    fs.pipe_file("/calib-l15/f.fits", raw)
    local = tmp_path / "l15.fits"
    local.write_bytes(raw)
    start = pd.Timestamp("2016-09-20T18:00")
    df = pd.DataFrame({"start": [start], "stop": [start + pd.Timedelta(seconds=3)],
                       "datakey": ["memory:///calib-l15/f.fits"]})  # fmt: skip
    frames = ih.open_frames(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = ih.to_map(frames, 0, level="1.5")
        want = register(sunpy_map.Map(str(local)))
    assert ours.data.shape == want.data.shape
    np.testing.assert_allclose(ours.data, want.data, rtol=1e-6, atol=1e-6 * np.abs(want.data).max())
    assert float(ours.meta["lvl_num"]) == 1.5
    for key in ("crpix1", "crpix2", "cdelt1", "cdelt2"):
        assert ours.meta[key] == pytest.approx(want.meta[key], rel=1e-9)
    assert ours.scale[0] == want.scale[0]
    plain = ih.to_map(frames, 0)
    assert float(plain.meta["lvl_num"]) == 1.0
    # A window: the user registers the whole frame, then takes the window's sky area.
    import astropy.units as u

    stored = sunpy_map.Map(str(local))
    corners = stored.pixel_to_world([19.5, 43.5] * u.pix, [9.5, 29.5] * u.pix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = register(stored).submap(corners[0], top_right=corners[1])
        cut = ih.open_frames(df, cutout={"y": slice(10, 30), "x": slice(20, 44)})
        selected = ih.open_frames(df).isel(y=slice(10, 30), x=slice(20, 44))
        for window in (cut, selected):
            ours = ih.to_map(window, 0, level="1.5")
            assert ours.data.shape == want.data.shape != (20, 24)
            np.testing.assert_allclose(ours.data, want.data, rtol=1e-6)
            for key in ("crpix1", "crpix2", "crval1", "crval2"):
                assert ours.meta[key] == pytest.approx(want.meta[key], rel=1e-9)
    with pytest.raises(ValueError, match="level='2'"):
        ih.to_map(frames, 0, level="2")


@pytest.mark.slow
def test_to_map_level_15_with_a_pointing_table_equals_aiapy(tmp_path):
    """update_pointing then register, as aiapy does them on a full 4096x4096 frame."""
    import astropy.units as u
    from aiapy.calibrate import register, update_pointing
    from astropy.table import QTable
    from astropy.time import Time

    hdul = make_aia_frame("2016-09-20T18:00", size=4096, seed=3)
    hdul[1].header["SAT_ROT"] = (0.01, "[deg] satellite roll")  # real AIA headers carry it
    raw = frame_bytes(hdul)
    fsspec.filesystem("memory").pipe_file("/calib-pt/f.fits", raw)
    local = tmp_path / "pt.fits"
    local.write_bytes(raw)
    # The frame's own pointing is CRPIX 2048.5, CROTA2 0: the table moves and turns it.
    pointing = QTable(
        {
            "T_START": Time(["2016-09-20T15:00", "2016-09-20T18:00"]),
            "T_STOP": Time(["2016-09-20T18:00", "2016-09-20T21:00"]),
            "A_094_X0": [2000.0, 2040.5] * u.pix,
            "A_094_Y0": [2000.0, 2052.25] * u.pix,
            "A_094_IMSCALE": [0.6, 0.601] * u.arcsec / u.pix,
            "A_094_INSTROT": [0.0, 0.5] * u.deg,
        }
    )
    start = pd.Timestamp("2016-09-20T18:00")
    stop = start + pd.Timedelta(seconds=3)
    rows = {"start": [start], "stop": [stop], "datakey": ["memory:///calib-pt/f.fits"]}
    frames = ih.open_frames(pd.DataFrame(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = ih.to_map(frames, 0, level="1.5", pointing_table=pointing)
        want = register(update_pointing(sunpy_map.Map(str(local)), pointing_table=pointing))
        unpointed = register(sunpy_map.Map(str(local)))
    scale = np.nanmax(np.abs(want.data))
    np.testing.assert_allclose(ours.data, want.data, rtol=1e-6, atol=1e-6 * scale)
    for key in ("crpix1", "crpix2", "cdelt1", "cdelt2", "crota2"):
        assert ours.meta.get(key) == pytest.approx(want.meta.get(key), rel=1e-9)
    # The table's second row (T_OBS 18:00:01) was used: without it the image differs.
    assert np.nanmax(np.abs(unpointed.data - want.data)) > 0.01 * scale
    with pytest.raises(ValueError, match="level='1.5'"):
        ih.to_map(frames, 0, level="1", pointing_table=pointing)


def test_without_aiapy_the_keywords_name_the_extra(tmp_path, monkeypatch):
    import sys

    from intake_helio.calibrate import MissingAiapyError

    df = _files(tmp_path, 94, DATES[:1], "noaiapy")
    frames = ih.open_frames(df[["start", "stop", "datakey"]], on_error="nan")
    for name in [m for m in sys.modules if m == "aiapy" or m.startswith("aiapy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aiapy", None)  # `import aiapy` raises ImportError
    for call in (
        lambda: ih.irradiance(
            frames, progress=False, correct_degradation=True, correction_table=TABLE
        ),
        lambda: ih.to_map(frames, 0, level="1.5"),
    ):
        with pytest.raises(MissingAiapyError) as info:
            call()
        msg = str(info.value)
        assert 'pip install "intake-helio[aia]"' in msg and "\n" not in msg
        assert isinstance(info.value, ImportError) and isinstance(info.value, HelioError)
