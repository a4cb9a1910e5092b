"""The solar disk per row (``disk_intervals``) and the disk statistics of ``frame_stats``.

``disk_intervals`` finds each row's run of on-disk pixels from the disk's ellipse in pixel
space; it must pick sunpy's pixels exactly (``coordinate_is_on_solar_disk``) for AIA-sized
and rotated, offset, anisotropic headers. ``frame_stats``' ``disk_mean``, ``disk_sum`` and
``offdisk_mean`` must equal numpy over that mask for every way pixels are decoded
(tiles of rows or blocks, uncompressed big-endian rows, float images, astropy's decoding)
and for cutouts whose bands are wider than the window.
"""

from __future__ import annotations

import io
import uuid
import warnings

import dask.config
import fsspec
import numpy as np
import pytest
from astropy.io import fits

from intake_helio.fits.disk import (
    DiskGeometryError,
    _angular_radius_rad,
    _tan_quadric,
    disk_intervals,
    disk_mask,
    wcs_of,
)
from intake_helio.fits.stats import frame_stats
from tests.builders import aia_wcs_header, quiet_bytes

RNG = np.random.default_rng(7)
DISK = ["disk_mean", "disk_sum", "offdisk_mean"]


def _header(**kw):
    return aia_wcs_header(exptime=2.0, **kw)


# ----------------------------------------------------------------------------- vs sunpy
@pytest.mark.parametrize(
    "kw",
    [
        dict(size=1024, crpix=(515.3, 509.8), crota=0.013, cdelt=(2.4, 2.4), crval=(0.0, 0.0)),
        dict(size=300, crpix=(140.0, 162.5), crota=-6.0, cdelt=(8.0, 8.6), crval=(40.0, -25.0)),
        dict(size=200, crpix=(20.0, 180.0), crota=30.0, cdelt=(12.0, 12.0), crval=(-300.0, 200.0)),
    ],
    ids=["aia-1024", "anisotropic", "disk-off-centre"],
)
def test_disk_intervals_pick_sunpys_pixels(kw):
    sunpy_map = pytest.importorskip("sunpy.map")
    from sunpy.map.maputils import all_coordinates_from_map, coordinate_is_on_solar_disk

    size = kw.pop("size")
    h = _header(**kw)
    # the fast path (the disk's ellipse) is the one tested, not the per-pixel fallback
    assert _tan_quadric(wcs_of(h), _angular_radius_rad(h)) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sunpy_map.Map(np.zeros((size, size), np.float32), h)
        want = np.asarray(coordinate_is_on_solar_disk(all_coordinates_from_map(m)))
    assert want.any() and (~want).any()
    for rows, cols in [(slice(0, size), slice(0, size)), (slice(7, size - 30), slice(33, size))]:
        np.testing.assert_array_equal(disk_mask(dict(h), rows, cols), want[rows, cols])
        lo, hi = disk_intervals(h, rows, cols)  # a fits.Header works as well as a dict
        w = want[rows, cols]
        for i in range(w.shape[0]):  # one run per row
            np.testing.assert_array_equal(np.flatnonzero(w[i]), np.arange(lo[i], hi[i]))


def test_a_projection_other_than_tan_tests_every_pixel_as_sunpy():
    """Not TAN (here AZP, zenithal perspective): no ellipse, each pixel through the WCS."""
    sunpy_map = pytest.importorskip("sunpy.map")
    from sunpy.map.maputils import all_coordinates_from_map, coordinate_is_on_solar_disk

    h = _header(crota=2.0)
    h["CTYPE1"], h["CTYPE2"] = "HPLN-AZP", "HPLT-AZP"
    assert _tan_quadric(wcs_of(h), _angular_radius_rad(h)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sunpy_map.Map(np.zeros((96, 96), np.float32), h)
        want = np.asarray(coordinate_is_on_solar_disk(all_coordinates_from_map(m)))
    assert want.any() and (~want).any()
    rows, cols = slice(3, 90), slice(10, 96)
    np.testing.assert_array_equal(disk_mask(h, rows, cols), want[rows, cols])


def test_a_header_without_a_disk_raises_disk_geometry_error():
    h = _header()
    del h["DSUN_OBS"], h["RSUN_OBS"]
    with pytest.raises(DiskGeometryError, match="neither DSUN_OBS nor RSUN_OBS"):
        disk_intervals(h, slice(0, 10), slice(0, 10))
    h = _header()
    h["CTYPE1"] = "RA---TAN"
    with pytest.raises(DiskGeometryError, match="not helioprojective"):
        disk_intervals(h, slice(0, 10), slice(0, 10))


# ----------------------------------------------------------------------------- frame_stats
def _raw(size=96) -> np.ndarray:
    data = RNG.integers(-200, 3000, (size, size)).astype(np.int16)
    data[RNG.random((size, size)) < 0.05] = -32768
    data[40, 30:70] = -32768
    return data


def _files() -> dict[str, tuple[bytes, int]]:
    h = _header(crota=3.0)
    h["BLANK"] = -32768
    a = _raw()

    def comp(data, **kw):
        return quiet_bytes(
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=h, **kw)])
        )

    return {
        "rice_rows": (comp(a, compression_type="RICE_1", tile_shape=(1, 96)), 1),
        "rice_blocks": (comp(a, compression_type="RICE_1", tile_shape=(7, 10)), 1),
        "uncompressed": (quiet_bytes(fits.HDUList([fits.PrimaryHDU(a.copy(), h)])), 0),
        "float64": (
            quiet_bytes(fits.HDUList([fits.PrimaryHDU(np.where(a == -32768, np.nan, a * 1.5), h)])),
            0,
        ),
        "hcompress": (comp(a, compression_type="HCOMPRESS_1", tile_shape=(16, 96)), 1),
    }


FILES = _files()


def _astropy(raw: bytes, hdu: int) -> tuple[np.ndarray, fits.Header]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdul:
            return np.asarray(hdul[hdu].data, dtype=np.float64), hdul[hdu].header.copy()


@pytest.mark.parametrize("band_pixels", [300, 262144])
@pytest.mark.parametrize(
    "window",
    [(None, None), (slice(10, 90), slice(13, 77)), (slice(41, 42), slice(0, 96))],
    ids=["whole", "cutout", "one-row"],
)
@pytest.mark.parametrize("name", sorted(FILES))
def test_frame_stats_disk_equals_numpy_over_the_mask(name, window, band_pixels):
    raw, hdu = FILES[name]
    fs = fsspec.filesystem("memory")
    path = f"/disk-stats/{uuid.uuid4().hex}.fits"
    fs.pipe_file(path, raw)
    rows, cols = window
    with dask.config.set({"intake_helio.band-pixels": band_pixels}):
        got = frame_stats(fs, path, [*DISK, "mean"], rows=rows, cols=cols)
        per_s = frame_stats(fs, path, DISK, rows=rows, cols=cols, units="DN/s")
    data, header = _astropy(raw, hdu)
    w = (rows or slice(0, 96), cols or slice(0, 96))
    data = data[w]
    on = disk_mask(header, *w)
    valid = ~np.isnan(data)
    want = {
        "disk_mean": data[on & valid].mean() if (on & valid).any() else np.nan,
        "disk_sum": data[on & valid].sum() if (on & valid).any() else np.nan,
        "offdisk_mean": data[~on & valid].mean() if (~on & valid).any() else np.nan,
        "mean": data[valid].mean(),
    }
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=key)
    for key in DISK:
        np.testing.assert_allclose(per_s[key], want[key] / 2.0, rtol=1e-12, err_msg=key)
