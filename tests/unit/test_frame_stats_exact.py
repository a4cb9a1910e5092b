"""``frame_stats``: exact statistics of 16- and 8-bit frames at the ends of their range.

The standard deviation of integer pixels comes from exact integer sums of squares (int32
squares added in uint32 three rows at a time, then uint64): it must equal numpy's float64
``std`` of the physical values (BSCALE, BZERO, EXPTIME applied; BLANK excluded) within
1e-9 relative, and the exactly rounded value from rational arithmetic within a few ulps,
even when every pixel is ``+-32767`` or BLANK (the largest squares), for any band size.
"""

from __future__ import annotations

import io
import math
import uuid
from fractions import Fraction

import dask.config
import fsspec
import numpy as np
import pytest
from astropy.io import fits

from intake_helio.fits.stats import frame_stats

RNG = np.random.default_rng(20240613)
EXPTIME = 2.5
STATS = ["mean", "sum", "min", "max", "std", "count"]


def _extreme_int16(ny=67, nx=50) -> np.ndarray:
    data = RNG.integers(-32767, 32768, (ny, nx), dtype=np.int16)
    data[0:7] = 32767  # full rows of the largest squares, within one 3-row group and across
    data[7:13] = -32767
    data[13] = -32768  # a row of BLANK (its squares, 2**30, are the largest of all)
    data[14:17, ::2] = -32768
    data[RNG.random((ny, nx)) < 0.05] = -32768
    data[:, 3] = 32767
    data[-1] = -32767
    return data


def _file(raw: np.ndarray, *, compressed: bool, bscale=None, bzero=None, blank=-32768) -> bytes:
    """A FITS file of ``raw``; BSCALE/BZERO under other names first (astropy drops them)."""
    h = fits.Header()
    h["EXPTIME"] = EXPTIME
    if blank is not None:
        h["BLANK"] = blank
    if bscale is not None:
        h["BSCALX"] = bscale
        h["BZERX"] = bzero
    if compressed:
        hdu = fits.CompImageHDU(
            raw, header=h, compression_type="RICE_1", tile_shape=(1, raw.shape[1])
        )
        hdul = fits.HDUList([fits.PrimaryHDU(), hdu])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(raw.copy(), h)])
    buf = io.BytesIO()
    hdul.writeto(buf)
    out = buf.getvalue().replace(b"BSCALX  =", b"BSCALE  =").replace(b"BZERX   =", b"BZERO   =")
    i = 1 if compressed else 0
    with fits.open(io.BytesIO(out), do_not_scale_image_data=True) as check:  # the raw stayed
        np.testing.assert_array_equal(check[i].data, raw)
        assert check[i].header.get("BSCALE") == bscale and check[i].header.get("BZERO") == bzero
    return out


def _put(raw: bytes):
    fs = fsspec.filesystem("memory")
    path = f"/stats-exact/{uuid.uuid4().hex}.fits"
    fs.pipe_file(path, raw)
    return fs, path


def _reference(raw: np.ndarray, blank, bscale, bzero, dn_per_s: bool) -> dict:
    valid = raw if blank is None else raw[raw != blank]
    phys = valid.astype(np.float64) * (1.0 if bscale is None else bscale)
    phys += 0.0 if bzero is None else bzero
    if dn_per_s:
        phys /= EXPTIME
    # the exactly rounded population std, from rational arithmetic on the raw integers
    ints = [int(v) for v in valid.ravel()]
    n, s, ss = len(ints), sum(ints), sum(v * v for v in ints)
    var = Fraction(n * ss - s * s, n * n)
    factor = abs(1.0 if bscale is None else bscale) / (EXPTIME if dn_per_s else 1.0)
    return {
        "mean": phys.mean(),
        "sum": phys.sum(),
        "min": phys.min(),
        "max": phys.max(),
        "std": phys.std(),
        "count": n,
        "exact_std": math.sqrt(var) * factor,
    }


@pytest.mark.parametrize("band_pixels", [500, 262144])  # bands of 10 rows (and 7), or one
@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize(
    ("bscale", "bzero"), [(None, None), (0.25, 10.0), (-3.5, 1.0e4)], ids=["raw", "scaled", "neg"]
)
@pytest.mark.parametrize("units", ["DN", "DN/s"])
def test_std_of_extreme_int16_equals_numpys_float64(band_pixels, compressed, bscale, bzero, units):
    raw = _extreme_int16()
    fs, path = _put(_file(raw, compressed=compressed, bscale=bscale, bzero=bzero))
    with dask.config.set({"intake_helio.band-pixels": band_pixels}):
        got = frame_stats(fs, path, STATS, units=units)
    want = _reference(raw, -32768, bscale, bzero, units == "DN/s")
    assert got["count"] == want["count"]
    for name in ("mean", "sum", "min", "max", "std"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(got["std"], want["exact_std"], rtol=4e-16)


@pytest.mark.parametrize("stats", [STATS, ["std"]], ids=["with-extremes", "std-only"])
@pytest.mark.parametrize("scale", [100, 4000, 32767])
def test_frames_without_blank_add_many_rows_at_a_time(stats, scale):
    """Without BLANK the valid extremes bound the squares: more rows add up in uint32."""
    raw = RNG.integers(-scale, scale + 1, (70, 45), dtype=np.int16)
    raw[5, 7] = scale
    fs, path = _put(_file(raw, compressed=True, blank=None))
    with dask.config.set({"intake_helio.band-pixels": 1500}):
        got = frame_stats(fs, path, stats)
    want = _reference(raw, None, None, None, False)
    np.testing.assert_allclose(got["std"], want["exact_std"], rtol=4e-16)
    np.testing.assert_allclose(got["std"], want["std"], rtol=1e-9)


def test_a_constant_frame_at_the_top_of_the_range_has_std_zero():
    raw = np.full((40, 33), 32767, dtype=np.int16)
    raw[::5, ::3] = -32768
    fs, path = _put(_file(raw, compressed=True))
    got = frame_stats(fs, path, STATS)
    assert got["std"] == 0.0 and got["mean"] == 32767.0 and got["min"] == got["max"] == 32767.0
    assert got["count"] == raw.size - np.count_nonzero(raw == -32768)


@pytest.mark.parametrize("blank", [None, 0, 255])
def test_uint8_frames_and_other_blanks(blank):
    raw = RNG.integers(0, 256, (30, 41), dtype=np.uint8)
    raw[:4] = 255
    raw[4:6] = 0
    fs, path = _put(_file(raw, compressed=True, blank=blank))
    with dask.config.set({"intake_helio.band-pixels": 200}):
        got = frame_stats(fs, path, STATS)
    want = _reference(raw, blank, None, None, False)
    assert got["count"] == want["count"]
    for name in ("mean", "sum", "min", "max", "std"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(got["std"], want["exact_std"], rtol=4e-16)


@pytest.mark.parametrize("compression", ["RICE_1", "HCOMPRESS_1"])  # fast path, astropy's
def test_unsigned_16_bit_frames_up_to_65535(compression):
    """BZERO = 32768 (uint16): astropy's decoding gives uint16, whose squares need 32 bits."""
    raw = RNG.integers(0, 65536, (40, 64), dtype=np.uint16)
    raw[:5] = 65535
    buf = io.BytesIO()
    hdu = fits.CompImageHDU(raw, compression_type=compression, tile_shape=(8, 64))
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    fs, path = _put(buf.getvalue())
    got = frame_stats(fs, path, STATS)
    want = _reference(raw.astype(np.int64), None, None, None, False)
    assert got["count"] == raw.size
    for name in ("mean", "sum", "min", "max", "std"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(got["std"], want["exact_std"], rtol=4e-16)
