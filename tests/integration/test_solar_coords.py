"""Solar coordinates of lazy frames, compared with sunpy on the same files.

``Tx``/``Ty`` coordinates, the reference frame's WCS and observer in ``attrs`` (a sunpy Map
rebuilt from them) and cutouts in arcsec or by ``SkyCoord`` corners (sunpy's ``submap``
window). The files are those of ``test_solar_maps``: RICE_1 int16 tiles in extension 1 with
pointing that drifts (and rotates: ``CROTA2 = 0.02 * i``) from frame to frame.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

import intake_helio as ih
from intake_helio.frames.build import FramesError
from intake_helio.frames.spec import frame_specs, resolve

sunpy_map = pytest.importorskip("sunpy.map")
from sunpy.coordinates import Helioprojective  # noqa: E402

from tests.builders import (  # noqa: E402
    SOLAR_N,
    SOLAR_SIZE,
    assert_same_map,
    solar_frames,
    sunpy_map_of,
)

N, SIZE = SOLAR_N, SOLAR_SIZE

PER_FRAME = ("DATE-OBS", "T_OBS", "CRPIX1", "CRPIX2", "CROTA2", "DSUN_OBS", "HGLN_OBS", "HGLT_OBS")


def _open(s3, solar_files, first=1, **kwargs):
    """Frames ``first..N-1``: the reference is file ``first`` (rotated for ``first > 0``)."""
    keys, _, times = solar_files
    df = pd.DataFrame({"start": times[first:N], "datakey": keys[first:N]})
    return ih.open_frames(df, storage_options=s3.storage_options, **kwargs)


def _map(data, meta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sunpy_map.Map(data, meta)


def _window(frames) -> tuple[slice, slice]:
    y, x = frames["y"].values, frames["x"].values
    return slice(int(y[0]), int(y[-1]) + 1), slice(int(x[0]), int(x[-1]) + 1)


def _submap_window(m, sub) -> tuple[slice, slice]:
    """The pixel window of ``sub`` in ``m`` (sunpy shifts CRPIX by the window's start)."""
    left = round(float(m.reference_pixel.x.to_value(u.pix)) + 1 - sub.meta["crpix1"])
    bottom = round(float(m.reference_pixel.y.to_value(u.pix)) + 1 - sub.meta["crpix2"])
    ny, nx = sub.data.shape
    return slice(bottom, bottom + ny), slice(left, left + nx)


def _hpc(m, tx, ty):
    return SkyCoord(tx * u.arcsec, ty * u.arcsec, frame=m.coordinate_frame)


# --------------------------------------------------------------------------- Tx / Ty
def test_tx_ty_are_sunpys_coordinates_on_the_reference_row_and_column(s3, solar_files):
    _, raws, _ = solar_files
    frames = _open(s3, solar_files)  # reference: file 1, CROTA2 = 0.02 deg
    m = sunpy_map_of(raws[1])
    ref_x, ref_y = (v.to_value(u.pix) for v in m.reference_pixel)
    pixels = np.arange(SIZE)
    row = m.pixel_to_world(pixels * u.pix, np.full(SIZE, ref_y) * u.pix)
    column = m.pixel_to_world(np.full(SIZE, ref_x) * u.pix, pixels * u.pix)
    assert frames["Tx"].dims == ("x",) and frames["Ty"].dims == ("y",)
    np.testing.assert_allclose(frames["Tx"].values, row.Tx.to_value(u.arcsec), atol=1e-6)
    np.testing.assert_allclose(frames["Ty"].values, column.Ty.to_value(u.arcsec), atol=1e-6)
    # and back: sunpy puts (Tx, Ty of the reference row/column) on those pixels
    px, _ = m.world_to_pixel(_hpc(m, frames["Tx"].values, row.Ty.to_value(u.arcsec)))
    _, py = m.world_to_pixel(_hpc(m, column.Tx.to_value(u.arcsec), frames["Ty"].values))
    np.testing.assert_allclose(px.to_value(u.pix), pixels, atol=1e-6)
    np.testing.assert_allclose(py.to_value(u.pix), pixels, atol=1e-6)
    for name in ("Tx", "Ty"):
        attrs = frames[name].attrs
        assert attrs["units"] == "arcsec" and "helioprojective" in attrs["long_name"]
        assert "CROTA2" in attrs["note"] and "reference row" in attrs["note"]


def test_tx_ty_follow_selections_and_cutouts_and_the_engine_still_resolves(s3, solar_files):
    full = _open(s3, solar_files)
    sub = full.isel(y=slice(10, 40), x=slice(5, 50))
    np.testing.assert_array_equal(sub["Tx"].values, full["Tx"].values[5:50])
    np.testing.assert_array_equal(sub["Ty"].values, full["Ty"].values[10:40])
    by_label = full.sel(x=slice(5, 49), y=slice(10, 39))
    xr.testing.assert_identical(by_label["Tx"], sub["Tx"])
    stepped = full[:, ::2, 3:9]
    np.testing.assert_array_equal(stepped["Ty"].values, full["Ty"].values[::2])
    # the frame engine still finds files and windows behind the selections
    found = resolve(sub.isel(time=[2, 0]))
    assert found is not None and (found.rows, found.cols) == (slice(10, 40), slice(5, 50))
    assert resolve(stepped) is not None
    # a pixel cutout has the same values along its window
    cut = _open(s3, solar_files, cutout=dict(y=slice(10, 40), x=slice(5, 50)))
    np.testing.assert_allclose(cut["Tx"].values, full["Tx"].values[5:50], atol=1e-9)
    np.testing.assert_allclose(cut["Ty"].values, full["Ty"].values[10:40], atol=1e-9)


# --------------------------------------------------------------------------- attrs -> Map
def test_a_map_from_the_attrs_is_the_reference_frames_map(s3, solar_files):
    _, raws, _ = solar_files
    frames = solar_frames(s3, solar_files)
    attrs = frames.attrs
    for key in ("CROTA2", "DATE-OBS", "T_OBS", "DSUN_OBS", "HGLN_OBS", "HGLT_OBS", "RSUN_REF"):
        assert key in attrs, key
    got = _map(frames[0].values, dict(attrs))
    assert type(got).__name__ == "AIAMap"
    assert_same_map(got, sunpy_map_of(raws[0]))


def test_a_map_from_the_attrs_of_a_window_is_sunpys_submap(s3, solar_files):
    _, raws, _ = solar_files
    frames = _open(s3, solar_files, cutout=dict(y=slice(10, 40), x=slice(5, 50)))
    want = sunpy_map_of(raws[1]).submap([5, 10] * u.pix, top_right=[49, 39] * u.pix)
    assert want.data.shape == (30, 45)
    assert_same_map(_map(frames[0].values, dict(frames.attrs)), want)


def test_other_frames_rebuild_with_their_own_header_keys(s3, solar_files):
    _, raws, _ = solar_files
    frames = solar_frames(s3, solar_files, header_keys=PER_FRAME)
    own = {k: frames[k].values for k in PER_FRAME}  # header bytes only, one read per frame
    for i in range(N):
        meta = {**frames.attrs, **{k: v[i] for k, v in own.items()}}
        assert_same_map(_map(frames[i].values, meta), sunpy_map_of(raws[i]))


# --------------------------------------------------------------------------- cutouts
def test_a_reversed_arcsec_cutout_is_refused_naming_the_order(s3, solar_files):
    with pytest.raises(ValueError) as info:
        _open(s3, solar_files, cutout=dict(Tx=slice(10.3, -600.5), Ty=slice(-310.7, 299.9)))
    assert isinstance(info.value, ih.HelioError)
    assert "cutout['Tx'] runs from 10.3 to -600.5 arcsec" in str(info.value)
    assert "(low, high)" in str(info.value)


@pytest.mark.parametrize(
    ("tx", "ty"),
    [
        (slice(-600, 0), slice(-300, 300)),
        (slice(-600.5, 10.3), slice(-310.7, 299.9)),
        (slice(-2000, -500), slice(-100.25, 2000)),  # clipped at the frame's edges
    ],
)
def test_an_arcsec_cutout_is_sunpys_submap_window(s3, solar_files, tx, ty):
    _, raws, _ = solar_files
    frames = _open(s3, solar_files, cutout=dict(Tx=tx, Ty=ty))
    m = sunpy_map_of(raws[1])
    sub = m.submap(_hpc(m, tx.start, ty.start), top_right=_hpc(m, tx.stop, ty.stop))
    rows, cols = _window(frames)
    want_rows, want_cols = _submap_window(m, sub)
    for got, want in ((rows, want_rows), (cols, want_cols)):
        assert abs(got.start - want.start) <= 1 and abs(got.stop - want.stop) <= 1
    assert (rows, cols) == (want_rows, want_cols)  # in fact the same window
    # read exactly as the pixel cutout of that window (only its tiles), same values
    spec = frame_specs(frames.data)[0]
    assert (spec.rows, spec.cols) == (rows, cols)
    values = frames.values
    np.testing.assert_array_equal(values[0], sub.data)
    for i in range(1, N - 1):
        np.testing.assert_array_equal(values[i], sunpy_map_of(raws[1 + i]).data[rows, cols])
    pixel = _open(s3, solar_files, cutout=dict(y=rows, x=cols))
    xr.testing.assert_identical(frames, pixel)
    assert frames.attrs["CRPIX1"] == pytest.approx(sub.meta["crpix1"])
    assert frames.attrs["CRPIX2"] == pytest.approx(sub.meta["crpix2"])


def test_arcsec_bounds_may_be_quantities_or_lists(s3, solar_files):
    want = _window(_open(s3, solar_files, cutout=dict(Tx=slice(-600, 0), Ty=slice(-0.1, 300))))
    quantities = dict(Tx=slice(-10 * u.arcmin, 0 * u.deg), Ty=slice(-0.1 * u.arcsec, 300))
    assert _window(_open(s3, solar_files, cutout=quantities)) == want
    assert _window(_open(s3, solar_files, cutout={"Tx": [-600, 0], "Ty": (-0.1, 300)})) == want


def test_skycoord_corners_give_sunpys_submap_window(s3, solar_files):
    _, raws, _ = solar_files
    m = sunpy_map_of(raws[1])
    arcsec = _window(_open(s3, solar_files, cutout=dict(Tx=slice(-600, 0), Ty=slice(-300, 300))))
    own = (_hpc(m, -600, -300), _hpc(m, 0, 300))
    assert _window(_open(s3, solar_files, cutout=own)) == arcsec
    assert _window(_open(s3, solar_files, cutout=list(own))) == arcsec
    # without an observer the corners' Tx/Ty are taken in the reference frame
    bare = SkyCoord([-600, 0] * u.arcsec, [-300, 300] * u.arcsec, frame="helioprojective")
    assert _window(_open(s3, solar_files, cutout=(bare[0], bare[1]))) == arcsec
    assert _window(_open(s3, solar_files, cutout=bare)) == arcsec  # one SkyCoord of two
    # other frames and observers are transformed as sunpy's submap does
    earth = Helioprojective(observer="earth", obstime=m.date)
    for corners in (
        SkyCoord(
            [-30, 10] * u.deg, [-20, 15] * u.deg, frame="heliographic_stonyhurst", obstime=m.date
        ),
        SkyCoord(
            [-30, 10] * u.deg,
            [-20, 15] * u.deg,
            frame="heliographic_carrington",
            observer="earth",
            obstime=m.date,
        ),
        SkyCoord([-500, 0] * u.arcsec, [-300, 300] * u.arcsec, frame=earth),
    ):
        frames = _open(s3, solar_files, cutout=(corners[0], corners[1].frame))
        sub = m.submap(corners[0], top_right=corners[1])
        assert _window(frames) == _submap_window(m, sub), corners.frame.name
        np.testing.assert_array_equal(frames[0].values, sub.data)


def test_bad_cutouts_are_clear_errors(s3, solar_files):
    m = sunpy_map_of(solar_files[1][1])
    cases = [
        (dict(y=slice(0, 10), Tx=slice(-600, 0), Ty=slice(0, 10)), "cannot be mixed"),
        (dict(Tx=slice(5000, 6000), Ty=slice(5000, 6000)), "lies outside the frame"),
        (dict(Tx=slice(-600, None), Ty=slice(-300, 300)), "has an open end"),
        (dict(Tx=slice(-600, 0)), "needs exactly Tx and Ty"),
        (dict(Tx=slice("west", 0), Ty=slice(-300, 300)), "expected a number of arcsec"),
        (dict(Tx=slice(-600 * u.s, 0), Ty=slice(-300, 300)), "is not an angle"),
        (dict(Tx=slice(-600, 0, 2), Ty=slice(-300, 300)), r"expected slice\(low, high\)"),
        ((_hpc(m, 5000, 5000), _hpc(m, 6000, 6000)), r"\(5000, 5000\) arcsec .* outside the frame"),
        (
            SkyCoord(
                [-1500, 0] * u.arcsec,
                [-300, 300] * u.arcsec,
                frame=Helioprojective(observer="earth", obstime=m.date),
            ),
            "transform to NaN",
        ),
        ("Tx=-600:0", r"expected dict\(y=slice"),
    ]
    for cutout, match in cases:
        with pytest.raises(FramesError, match=match) as err:
            _open(s3, solar_files, cutout=cutout)
        assert isinstance(err.value, ih.HelioError) and isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- drivers
def test_catalog_channels_and_intake_drivers_pass_solar_cutouts_through(s3):
    from intake_helio.intake.source import HelioFramesSource
    from intake_helio.testing.demo_data import write_demo_dataset

    so = s3.storage_options
    a = write_demo_dataset("s3://helio-demo/", so, frames=3, size=64, corrupt=0)
    write_demo_dataset(
        "s3://helio-demo/", so, frames=3, size=64, corrupt=0, dataset_id="aia_0171", wavelength=171
    )
    bucket = ih.open_bucket(a.root, so)
    span = dict(start=a.start, stop=a.stop)
    box = dict(Tx=slice(-600, 0), Ty=slice(-300, 300))
    want = bucket[a.dataset_id].to_dataarray(cutout=box, **span).compute()
    assert 0 < want.sizes["x"] < 64 and 0 < want.sizes["y"] < 64
    corners = SkyCoord([-600, 0] * u.arcsec, [-300, 300] * u.arcsec, frame="helioprojective")
    pair = (corners[0], corners[1])

    # intake 2: YAML-safe arcsec lists; SkyCoord corners kept by the reader and its entries
    reader = ih.HelioFramesReader(
        a.root,
        a.dataset_id,
        storage_options=so,
        cutout={"Tx": [-600, 0], "Ty": [-300, 300]},
        **span,
    )
    assert reader.kwargs["cutout"] == {"Tx": [-600.0, 0.0], "Ty": [-300.0, 300.0]}
    xr.testing.assert_identical(reader.read().compute(), want)
    reader = ih.HelioFramesReader(a.root, a.dataset_id, storage_options=so, cutout=pair, **span)
    xr.testing.assert_identical(reader.read().compute(), want)
    xr.testing.assert_identical(reader.to_entry().to_reader().read().compute(), want)
    assert reader(units="DN/s").read().shape == want.shape
    # intake 1
    source = HelioFramesSource(a.root, a.dataset_id, storage_options=so, cutout=pair, **span)
    xr.testing.assert_identical(source.read(), want)
    # channels: each channel's own reference frame maps the box (here the same geometry)
    channels = ih.open_channels(bucket, [a.dataset_id, "aia_0171"], cutout=box, **span)
    assert channels["aia_0171"].shape == want.shape
    np.testing.assert_array_equal(channels["aia_0171_Tx"].values, want["Tx"].values)
