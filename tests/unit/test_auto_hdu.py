"""``AutoHDU``: each frame's own image HDU, the probed one tried first (no sockets)."""

from __future__ import annotations

import io
import pickle
import uuid

import fsspec
import numpy as np
import pytest
from astropy.io import fits

import intake_helio.fits.frame as ff
from intake_helio.base.errors import FrameReadError

A = np.arange(64, dtype=np.int16).reshape(8, 8)
B = (100 + np.arange(48, dtype=np.int16)).reshape(6, 8)


def _put(hdus) -> tuple[fsspec.AbstractFileSystem, str]:
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    fs = fsspec.filesystem("memory")
    path = f"/auto/{uuid.uuid4().hex}.fits"
    fs.pipe_file(path, buf.getvalue())
    return fs, path


def _two_images():
    return _put([fits.PrimaryHDU(A), fits.ImageHDU(B)])


def test_the_first_guess_wins_when_it_is_an_image():
    fs, path = _two_images()
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(1)), B)
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(0)), A)
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu="auto"), A)


def test_the_walk_finds_the_image_when_the_guess_is_not_one():
    # compressed frame (empty primary, image in extension 1) read with the guess 0
    fs, path = _put([fits.PrimaryHDU(), fits.CompImageHDU(A, compression_type="RICE_1")])
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(0)), A)
    # primary-HDU frame read with the guess 1 (no HDU 1 at all): the image before it
    fs, path = _put([fits.PrimaryHDU(A)])
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(1)), A)
    # the guess is a table: the first image before it
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="J", array=[1, 2])])
    fs, path = _put([fits.PrimaryHDU(A), table, fits.ImageHDU(B)])
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(1)), A)
    # nothing before the guess, which is not an image: the next image after it
    fs, path = _put([fits.PrimaryHDU(), table, fits.ImageHDU(B)])
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=ff.AutoHDU(1)), B)
    assert ff.probe_frame(fs, path, hdu=ff.AutoHDU(1)).hdu == 2


def test_no_image_at_all_is_the_same_reason_as_auto():
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="J", array=[1, 2])])
    fs, path = _put([fits.PrimaryHDU(), table])
    with pytest.raises(FrameReadError, match="no image HDU") as auto:
        ff.read_frame(fs, path, hdu="auto")
    with pytest.raises(FrameReadError, match="no image HDU") as guessed:
        ff.read_frame(fs, path, hdu=ff.AutoHDU(1))
    assert guessed.value.reason == auto.value.reason


def test_the_shape_check_still_applies():
    fs, path = _two_images()
    with pytest.raises(FrameReadError, match="shape mismatch"):
        ff.frame_sum(fs, path, hdu=ff.AutoHDU(1), expect_shape=A.shape)


def test_auto_hdu_is_a_small_picklable_value():
    h = ff.AutoHDU(1)
    assert pickle.loads(pickle.dumps(h)) == h
    assert str(h) == "auto"
