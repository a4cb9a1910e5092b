"""Solar geometry from a frame's own header, compared with sunpy on the same header."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest

from intake_helio.fits.disk import arcsec_window, disk_mask, solar_axes
from tests.builders import aia_wcs_header

sunpy_map = pytest.importorskip("sunpy.map")
from sunpy.map.maputils import all_coordinates_from_map, coordinate_is_on_solar_disk  # noqa: E402

SIZE = 96


def _map(h):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sunpy_map.Map(np.zeros((SIZE, SIZE), np.float32), h)


@pytest.mark.parametrize("crota", [0.0, 0.03, 7.0])
@pytest.mark.parametrize(
    "window", [(slice(0, SIZE), slice(0, SIZE)), (slice(20, 70), slice(5, 60))]
)
def test_disk_mask_equals_sunpy(crota, window):
    h = aia_wcs_header(crota=crota)
    m = _map(h)
    want = coordinate_is_on_solar_disk(all_coordinates_from_map(m))[window]
    got = disk_mask(dict(h), *window)
    assert got.shape == want.shape
    assert want.any() and (~want).any()
    np.testing.assert_array_equal(got, want)


def test_solar_axes_are_sunpys_world_coordinates_on_the_reference_row_and_column():
    h = aia_wcs_header()
    m = _map(h)
    rows, cols = slice(10, 80), slice(0, SIZE)
    tx, ty = solar_axes(dict(h), rows, cols)
    ref_x, ref_y = h["CRPIX1"] - 1, h["CRPIX2"] - 1
    c = m.pixel_to_world(np.arange(cols.start, cols.stop) * u.pix, np.full(SIZE, ref_y) * u.pix)
    np.testing.assert_allclose(tx, c.Tx.to_value("arcsec"), atol=1e-6)
    c = m.pixel_to_world(np.full(70, ref_x) * u.pix, np.arange(rows.start, rows.stop) * u.pix)
    np.testing.assert_allclose(ty, c.Ty.to_value("arcsec"), atol=1e-6)


def test_arcsec_window_matches_sunpy_submap_within_a_pixel():
    from astropy.coordinates import SkyCoord

    h = aia_wcs_header()
    m = _map(h)
    rows, cols = arcsec_window(dict(h), (SIZE, SIZE), slice(-600, 0), slice(-300, 300))
    bl = SkyCoord(-600 * u.arcsec, -300 * u.arcsec, frame=m.coordinate_frame)
    tr = SkyCoord(0 * u.arcsec, 300 * u.arcsec, frame=m.coordinate_frame)
    sub = m.submap(bl, top_right=tr)
    x0, y0 = (int(np.round(float(v))) for v in m.wcs.world_to_pixel(sub.bottom_left_coord))
    assert abs(cols.start - x0) <= 1 and abs(rows.start - y0) <= 1
    assert abs((cols.stop - cols.start) - sub.data.shape[1]) <= 1
    assert abs((rows.stop - rows.start) - sub.data.shape[0]) <= 1
