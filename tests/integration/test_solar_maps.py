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
from tests.builders import (
    SOLAR_N,
    SOLAR_SIZE,
    assert_same_map,
    solar_frames,
    sunpy_map_of,
)

pytest.importorskip("sunpy.map")  # every test compares with sunpy

N, SIZE = SOLAR_N, SOLAR_SIZE  # the files of the solar_files fixture (tests/conftest.py)


@pytest.mark.parametrize("i", range(N))
def test_to_map_equals_sunpy_on_the_file_with_its_own_pointing(s3, solar_files, i):
    _, raws, times = solar_files
    frames = solar_frames(s3, solar_files)
    got = ih.to_map(frames, i)
    assert type(got).__name__ == "AIAMap"
    assert_same_map(got, sunpy_map_of(raws[i]))
    # by time: the nearest frame
    assert_same_map(ih.to_map(frames, times[i] + pd.Timedelta(seconds=1)), sunpy_map_of(raws[i]))


def test_to_map_of_a_window_matches_sunpy_submap(s3, solar_files):
    _, raws, _ = solar_files
    frames = solar_frames(s3, solar_files).isel(y=slice(10, 40), x=slice(5, 50))
    got = ih.to_map(frames, 2)
    want = sunpy_map_of(raws[2])
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
    assert_same_map(ih.to_map(frames, 0), sunpy_map_of(raws[N]))


def test_to_map_needs_intake_helio_frames_and_a_valid_index(s3, solar_files):
    frames = solar_frames(s3, solar_files)
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
        frames = solar_frames(s3, solar_files, on_error=on_error, quality="good")
        with pytest.raises(ih.FrameReadError, match="truncated"):
            ih.to_map(frames, 1)
        with pytest.raises(ih.FrameReadError, match=r"quality flag 0x00000400.*quality=None"):
            ih.to_map(frames, 2)
        assert_same_map(ih.to_map(frames, 0), sunpy_map_of(raws[0]))
    # without quality="good" the flagged frame is a Map like any other
    frames = solar_frames(s3, solar_files, on_error="nan")
    assert ih.to_map(frames, 2).data.shape == (SIZE, SIZE)


def test_to_map_by_time_takes_a_frame_within_the_tolerance(s3, solar_files):
    _, raws, times = solar_files
    frames = solar_frames(s3, solar_files)
    assert_same_map(ih.to_map(frames, times[1] + pd.Timedelta(seconds=5)), sunpy_map_of(raws[1]))
    with pytest.raises(ih.HelioError, match=r"no frame within tolerance='6s'.*nearest is"):
        ih.to_map(frames, times[-1] + pd.Timedelta(hours=1))
    far = ih.to_map(frames, times[N - 1] + pd.Timedelta(hours=1), tolerance=None)
    assert_same_map(far, sunpy_map_of(raws[N - 1]))
    assert_same_map(
        ih.to_map(frames, times[0] - pd.Timedelta(seconds=50), tolerance="1min"),
        sunpy_map_of(raws[0]),
    )
