"""``ih.to_map``: one lazy frame as a sunpy Map, compared with sunpy reading the file itself.

The files are real-format (RICE_1 int16 tiles in extension 1, as HelioCloud stores AIA, and a
float image in the primary HDU) in the local S3 server, with pointing that drifts from frame
to frame, so a Map built from the first frame's header would be wrong for the others.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
from tests.builders import aia_wcs_header

sunpy_map = pytest.importorskip("sunpy.map")

N = 4
SIZE = 64


def _header(i: int, t: pd.Timestamp) -> fits.Header:
    cards = {
        "DATE-OBS": f"{t:%Y-%m-%dT%H:%M:%S}.340",
        "T_OBS": f"{t + pd.Timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}.340Z",
        "DSUN_OBS": 1.5e11 + 1e6 * i,
        "HGLN_OBS": 0.001 * i,
        "HGLT_OBS": 1.5 + 0.01 * i,
        "RSUN_OBS": 957.0,
        "QUALITY": 0,
    }
    return aia_wcs_header(
        crpix=(32.5 + 0.7 * i, 31.5 - 0.4 * i),  # pointing drifts frame by frame
        crota=0.02 * i,
        cdelt=(38.4, 38.4),
        crval=(0.0, 0.0),
        exptime=2.0,
        **cards,
    )


@pytest.fixture
def solar_files(s3):
    """(datakeys, raw bytes) of N compressed-int16 frames and one float primary-HDU frame."""
    fs = s3.filesystem()
    fs.mkdir("solar")
    rng = np.random.default_rng(1)
    keys, raws = [], []
    t0 = pd.Timestamp("2021-03-04T05:06:00")
    for i in range(N):
        t = t0 + pd.Timedelta(seconds=12 * i)
        data = rng.integers(0, 3000, (SIZE, SIZE)).astype(np.int16)
        data[0, :3] = -32768
        h = _header(i, t)
        h["BLANK"] = -32768
        hdul = fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.CompImageHDU(
                    data=data, header=h, compression_type="RICE_1", tile_shape=(1, SIZE)
                ),
            ]
        )
        buf = io.BytesIO()
        hdul.writeto(buf)
        keys.append(f"s3://solar/aia171_{i}.fits")
        raws.append(buf.getvalue())
    t = t0 + pd.Timedelta(seconds=12 * N)
    h = _header(N, t)
    buf = io.BytesIO()
    fits.PrimaryHDU(rng.normal(100, 10, (SIZE, SIZE)).astype(np.float64), header=h).writeto(buf)
    keys.append("s3://solar/aia171_float.fits")
    raws.append(buf.getvalue())
    for key, raw in zip(keys, raws, strict=True):
        fs.pipe_file(key, raw)
    times = [t0 + pd.Timedelta(seconds=12 * i) for i in range(N + 1)]
    return keys, raws, times


def _frames(s3, solar_files, n=N, **kwargs):
    keys, _, times = solar_files
    df = pd.DataFrame({"start": times[:n], "datakey": keys[:n]})
    return ih.open_frames(df, storage_options=s3.storage_options, **kwargs)


def _sunpy(raw: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdul:
            hdu = hdul[1] if len(hdul) > 1 else hdul[0]
            return sunpy_map.Map(np.asarray(hdu.data, dtype=np.float32), hdu.header.copy())


def _same_map(got, want):
    assert type(got) is type(want)
    assert got.date == want.date
    assert got.wavelength == want.wavelength
    assert got.observer_coordinate.separation_3d(want.observer_coordinate).to_value("m") < 1
    assert got.reference_pixel == want.reference_pixel
    assert got.reference_coordinate.separation(want.reference_coordinate).to_value("arcsec") < 1e-6
    np.testing.assert_allclose(got.rotation_matrix, want.rotation_matrix)
    np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.parametrize("i", range(N))
def test_to_map_equals_sunpy_on_the_file_with_its_own_pointing(s3, solar_files, i):
    _, raws, times = solar_files
    frames = _frames(s3, solar_files)
    got = ih.to_map(frames, i)
    assert type(got).__name__ == "AIAMap"
    _same_map(got, _sunpy(raws[i]))
    # by time: the nearest frame
    _same_map(ih.to_map(frames, times[i] + pd.Timedelta(seconds=1)), _sunpy(raws[i]))


def test_to_map_of_a_window_matches_sunpy_submap(s3, solar_files):
    _, raws, _ = solar_files
    frames = _frames(s3, solar_files).isel(y=slice(10, 40), x=slice(5, 50))
    got = ih.to_map(frames, 2)
    want = _sunpy(raws[2])
    np.testing.assert_array_equal(got.data, want.data[10:40, 5:50])
    # the same sky position at the window's corner pixel
    import astropy.units as u

    corner = got.pixel_to_world(0 * u.pix, 0 * u.pix)
    full = want.pixel_to_world(5 * u.pix, 10 * u.pix)
    assert corner.separation(full).to_value("arcsec") < 1e-6


def test_to_map_of_a_float_primary_hdu_frame(s3, solar_files):
    keys, raws, times = solar_files
    df = pd.DataFrame({"start": times[N:], "datakey": keys[N:]})
    frames = ih.open_frames(df, storage_options=s3.storage_options)
    _same_map(ih.to_map(frames, 0), _sunpy(raws[N]))


def test_to_map_needs_intake_helio_frames_and_a_valid_index(s3, solar_files):
    frames = _frames(s3, solar_files)
    with pytest.raises(ih.HelioError, match="out of range for 4 frames"):
        ih.to_map(frames, 9)
    with pytest.raises(ih.HelioError, match="do not come from ih.open_frames"):
        ih.to_map(frames.copy(data=frames.values), 0)
    with pytest.raises(ih.HelioError, match="not contiguous"):
        ih.to_map(frames[:, ::2], 0)


def test_to_map_of_a_frame_without_a_value_raises_its_reason(s3, solar_files):
    """A truncated frame and a flagged one (``quality="good"``) raise, naming why."""
    keys, raws, _times = solar_files
    fs = s3.filesystem()
    fs.pipe_file(keys[1], raws[1][: len(raws[1]) // 2])  # truncated
    with warnings.catch_warnings(), fits.open(io.BytesIO(raws[2])) as hdul:
        warnings.simplefilter("ignore")  # re-compressing the BLANK pixels (never decoded)
        hdul[1].header["QUALITY"] = 0x400
        buf = io.BytesIO()
        hdul.writeto(buf)
    fs.pipe_file(keys[2], buf.getvalue())
    for on_error in ("nan", "raise"):
        frames = _frames(s3, solar_files, on_error=on_error, quality="good")
        with pytest.raises(ih.FrameReadError, match="truncated"):
            ih.to_map(frames, 1)
        with pytest.raises(ih.FrameReadError, match=r"quality flag 0x00000400.*quality=None"):
            ih.to_map(frames, 2)
        _same_map(ih.to_map(frames, 0), _sunpy(raws[0]))
    # without quality="good" the flagged frame is a Map like any other
    frames = _frames(s3, solar_files, on_error="nan")
    assert ih.to_map(frames, 2).data.shape == (SIZE, SIZE)


def test_to_map_by_time_takes_a_frame_within_the_tolerance(s3, solar_files):
    _, raws, times = solar_files
    frames = _frames(s3, solar_files)
    _same_map(ih.to_map(frames, times[1] + pd.Timedelta(seconds=5)), _sunpy(raws[1]))
    with pytest.raises(ih.HelioError, match=r"no frame within tolerance='6s'.*nearest is"):
        ih.to_map(frames, times[-1] + pd.Timedelta(hours=1))
    far = ih.to_map(frames, times[N - 1] + pd.Timedelta(hours=1), tolerance=None)
    _same_map(far, _sunpy(raws[N - 1]))
    _same_map(
        ih.to_map(frames, times[0] - pd.Timedelta(seconds=50), tolerance="1min"), _sunpy(raws[0])
    )
