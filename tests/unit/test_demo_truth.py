"""The demo's truth (issue 28 item 5): a flare in an active region, AEC exposures, B0, index stops.

Pure generator tests (memory:// store, no sockets): what :func:`write_demo_dataset` says each
frame holds is what astropy reads from it; what :func:`write_demo_series` says of its
magnetometer (issue 22: each minute's mean ``|B|``) is what cdflib reads from its CDF files.
"""

from __future__ import annotations

import io
import uuid

import fsspec
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from intake_helio.testing.aia import (
    WAVELENGTHS,
    aec_exptime,
    flare_amplitude,
    flare_profile,
    frame_boxes,
    frame_bytes,
    make_aia_frame,
    nominal_exptime,
    solar_b0,
)
from intake_helio.testing.demo_data import DemoDataError, flare_timing, write_demo_dataset
from intake_helio.testing.demo_series import QUIET_FIELD, write_demo_series


def _read(raw: bytes) -> tuple[fits.Header, np.ndarray]:
    with fits.open(io.BytesIO(raw)) as hdul:
        return hdul[1].header.copy(), np.array(hdul[1].data)


@pytest.fixture
def mem_root():
    name = f"truth-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture(scope="module")
def run94():
    """The default 94 Å run (48 x 4 min from 2020-12-31 22:00) and its files' contents."""
    root = f"memory://truth-run-{uuid.uuid4().hex[:8]}/"
    ds = write_demo_dataset(root)
    fs = fsspec.filesystem("memory")
    files = {k: _read(fs.cat_file(k)) for k in ds.datakeys if k not in ds.corrupt}
    bucket = root[len("memory://") :].rstrip("/")
    rows = []
    for year in (2020, 2021):
        lines = fs.cat_file(f"/{bucket}/sdo/aia/registries/aia_0094_{year}.csv").decode()
        rows += [line.split(",") for line in lines.splitlines()[1:]]
    yield ds, files, rows
    fs.rm(f"/{bucket}", recursive=True)


# ----------------------------------------------------------------------------- the truth


def test_expected_mean_and_rate_are_what_astropy_reads(run94):
    ds, files, _ = run94
    assert len(ds.exptime) == len(ds.expected_rate) == len(ds.datakeys) == 48
    for i, key in enumerate(ds.datakeys):
        if key in ds.corrupt:
            assert np.isnan(ds.expected_mean[i]) and np.isnan(ds.expected_rate[i])
            continue
        header, image = files[key]
        mean = np.nanmean(image, dtype=np.float64)
        assert mean == pytest.approx(ds.expected_mean[i], rel=1e-9)
        assert header["EXPTIME"] == ds.exptime[i]
        assert ds.expected_rate[i] == pytest.approx(mean / header["EXPTIME"], rel=1e-9)
        # the boxes' truth too
        for box in ds.boxes:
            assert np.nanmean(image[box.slices], dtype=np.float64) == pytest.approx(
                ds.box_mean(box.name)[i], rel=1e-9
            )


def test_exposure_shortens_in_steps_during_the_flare(run94):
    ds, _, _ = run94
    exptime = np.array(ds.exptime)
    factors = np.array(ds.flare_factor)
    assert exptime[0] == exptime[-1] == 2.9  # nominal 94 Å exposure away from the flare
    i_peak = int(np.argmax(factors))
    assert exptime[i_peak] == pytest.approx(0.87)  # 0.3 of nominal at a factor 4
    steps = set(np.round(exptime / 2.9, 3).tolist())
    assert steps <= {1.0, 0.7, 0.5, 0.3} and len(steps) >= 3  # discrete AEC steps
    # brighter flare, never a longer exposure
    order = np.argsort(factors)
    assert np.all(np.diff(exptime[order]) <= 0)


def test_dn_dips_while_dn_per_s_rises(run94):
    ds, _, _ = run94
    i_peak = int(np.argmax(ds.flare_factor))
    mean, rate = np.array(ds.expected_mean), np.array(ds.expected_rate)
    assert mean[i_peak] < 0.6 * mean[0]  # in DN the shorter exposure wins
    assert rate[i_peak] > 1.1 * rate[0]  # in DN/s the flare shows
    good = ~np.isnan(rate)
    # DN/s is smooth: no jump where the exposure steps (the flare factor changes little)
    jumps = np.abs(np.diff(rate[good])) / rate[good][:-1]
    assert jumps.max() < 0.1


def test_flare_box_rises_quiet_sun_and_corner_stay_flat(run94):
    ds, _, _ = run94
    amplitude = flare_amplitude(94)
    i_peak = int(np.argmax(ds.flare_factor))
    flare, quiet, corner = (ds.box_rate(n) for n in ("flare", "quiet", "corner"))
    good = ~np.isnan(flare)
    assert 0.85 * amplitude < flare[i_peak] / flare[0] <= 1.02 * amplitude
    assert np.nanmax(np.abs(quiet[good] / quiet[0] - 1)) < 0.02
    # the corner is faint (a few DN): the Poisson scatter of its mean is a few %
    assert np.nanmax(np.abs(corner[good] / np.nanmean(corner) - 1)) < 0.1
    assert abs(corner[i_peak] / np.nanmean(corner[:5]) - 1) < 0.1
    assert np.nanmean(corner) < 0.2 * np.nanmean(quiet)  # off the limb is faint


def test_index_stop_is_the_end_of_the_exposure(run94):
    ds, _, rows = run94
    assert [r[2] for r in rows] == list(ds.datakeys)
    for (start, stop, _, _), t, e in zip(rows, ds.times, ds.exptime, strict=True):
        assert pd.Timestamp(start).tz_localize(None) == t
        assert pd.Timestamp(stop) - pd.Timestamp(start) == pd.Timedelta(e, "s")
    # so a search from 22:01 to 22:03 cannot overlap the 22:00 frame (it ends at 22:00:02.9)
    assert pd.Timestamp(rows[0][1]) < pd.Timestamp("2020-12-31T22:01Z")


def test_the_flare_box_is_on_the_disk_and_the_corner_off_it(run94):
    ds, files, _ = run94
    header, _ = next(iter(files.values()))
    c, r_sun = header["CRPIX1"] - 1, header["R_SUN"]
    for name, inside in (("flare", True), ("quiet", True), ("corner", False)):
        box = ds.box(name)
        ys, xs = np.mgrid[box.y0 : box.y1, box.x0 : box.x1]
        rho = np.hypot(xs - c, ys - c) / r_sun
        assert (rho.max() < 0.95) if inside else (rho.min() > 1.05), name
    flare = ds.box("flare")
    assert flare.x1 < c and flare.y0 > c  # east (left) and north (up) of the centre
    assert ds.box("quiet").cutout == {
        "y": slice(ds.box("quiet").y0, ds.box("quiet").y1),
        "x": slice(ds.box("quiet").x0, ds.box("quiet").x1),
    }


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("when", "b0"),
    [
        ("2021-03-06T12:00", -7.25),  # minimum in early March
        ("2021-09-08T12:00", 7.25),  # maximum in early September
        ("2021-06-06T12:00", 0.0),  # zero in early June and early December
        ("2021-12-08T00:00", 0.0),
    ],
)
def test_solar_b0_phase_and_amplitude(when, b0):
    assert solar_b0(pd.Timestamp(when)) == pytest.approx(b0, abs=0.05)


def test_b0_is_written_as_hglt_obs():
    for when, sign in (("2021-03-04T05:06", -1), ("2021-09-04T05:06", 1)):
        header, _ = _read(frame_bytes(make_aia_frame(when, size=32)))
        assert header["HGLT_OBS"] == pytest.approx(solar_b0(pd.Timestamp(when)), abs=1e-4)
        assert 7.0 < sign * header["HGLT_OBS"] < 7.26


def test_nominal_and_aec_exposures_per_channel():
    nominal = {w: nominal_exptime(w) for w in WAVELENGTHS}
    assert nominal == {94: 2.9, 131: 2.9, 171: 2.0, 193: 2.0, 211: 2.9, 304: 2.9, 335: 2.9}
    for w in WAVELENGTHS:
        assert aec_exptime(w, 1.0) == nominal[w]
        assert aec_exptime(w, 10.0) == pytest.approx(0.3 * nominal[w], abs=1e-3)
    np.testing.assert_allclose(aec_exptime(94, [1.0, 2.0, 3.0, 4.0]), [2.9, 2.03, 1.45, 0.87])
    # make_aia_frame picks the AEC exposure unless told otherwise
    header, _ = _read(frame_bytes(make_aia_frame("2021-01-01", size=32, intensity=4.0)))
    assert header["EXPTIME"] == 0.87
    header, _ = _read(frame_bytes(make_aia_frame("2021-01-01", size=32, wavelength=171)))
    assert header["EXPTIME"] == 2.0


def test_counts_are_proportional_to_exposure():
    t = pd.Timestamp("2021-01-01T00:00")
    box = frame_boxes(t, 128)["quiet"]
    long = _read(frame_bytes(make_aia_frame(t, size=128, exptime=2.9)))[1]
    short = _read(frame_bytes(make_aia_frame(t, size=128, exptime=0.87)))[1]
    assert np.nanmean(short) / np.nanmean(long) == pytest.approx(0.3, rel=0.01)
    assert box.mean(short) / box.mean(long) == pytest.approx(0.3, rel=0.02)


def test_171_flare_is_weaker_than_94(mem_root):
    a = write_demo_dataset(mem_root, frames=12, size=64, corrupt=0)
    b = write_demo_dataset(mem_root, frames=12, size=64, corrupt=0, wavelength=171)
    rise = [d.box_rate("flare").max() / d.box_rate("flare")[0] for d in (a, b)]
    assert rise[0] > 3.0 and 1.3 < rise[1] < 1.6
    assert b.exptime[0] == 2.0 and min(b.exptime) < 2.0
    np.testing.assert_array_equal(
        a.flare_factor, flare_profile(a.times, amplitude=4.0, rise="5min", decay="15min")
    )


# ----------------------------------------------------------------------------- magnetometer
def _cdf_records(raw: bytes):
    """``(Epoch, B_GSE)`` of a CDF file as cdflib reads it (FILLVAL as NaN)."""
    import tempfile

    import cdflib.xarray

    with tempfile.NamedTemporaryFile(suffix=".cdf") as f:
        f.write(raw)
        f.flush()
        ds = cdflib.xarray.cdf_to_xarray(f.name, to_datetime=True, fillval_to_nan=True)
        return ds["Epoch"].to_numpy(), ds["B_GSE"].to_numpy()


@pytest.fixture(scope="module")
def mag_run():
    """The demo's 48-frame AIA run and the magnetometer over it, in one memory:// bucket."""
    root = f"memory://truth-mag-{uuid.uuid4().hex[:8]}/"
    aia = write_demo_dataset(root, size=32)
    mag = write_demo_series(root, start=aia.start, stop=aia.stop, flare=aia.flare)
    fs = fsspec.filesystem("memory")
    files = [_cdf_records(fs.cat_file(k)) for k in mag.datakeys]
    catalog = fs.cat_file(root[len("memory://") :] + "catalog.json").decode()
    yield aia, mag, files, catalog
    fs.rm("/" + root[len("memory://") :].rstrip("/"), recursive=True)


def test_magnetometer_truth_is_what_cdflib_reads(mag_run):
    aia, mag, files, _ = mag_run
    times = np.concatenate([t for t, _ in files])
    b = np.concatenate([v for _, v in files]).astype(np.float64)
    assert len(mag.datakeys) == 7  # 30-min files over 192 min, the last one 12 min
    expected = pd.date_range(aia.start, aia.stop, freq="1s", inclusive="left")
    np.testing.assert_array_equal(times, expected.to_numpy())
    # 1 s records from a whole minute: 60 a minute; |B| of each, then each minute's mean
    per_minute = np.sqrt((b**2).sum(axis=1)).reshape(-1, 60)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty"):
        means = np.nanmean(per_minute, axis=1)
    assert mag.minutes == tuple(pd.date_range(aia.start, aia.stop, freq="1min", inclusive="left"))
    np.testing.assert_allclose(mag.mean_b, means, rtol=1e-12, equal_nan=True)
    # the gap: 90 s of FILLVAL, one whole minute NaN and one half minute
    gap = np.isnan(b).any(axis=1)
    assert gap.sum() == 90 and (times[gap][0], times[gap][-1]) == mag.gap
    assert np.isnan(mag.mean_b).sum() == 1


def test_magnetometer_follows_the_aia_flare(mag_run):
    aia, mag, _, catalog = mag_run
    peak, rise, decay = aia.flare
    assert (peak, rise, decay) == flare_timing(aia.start, aia.stop, 48)
    np.testing.assert_array_equal(
        aia.flare_factor, flare_profile(aia.times, peak=peak, rise=rise, decay=decay)
    )
    assert mag.flare == aia.flare
    mean_b = np.array(mag.mean_b)
    quiet = float(np.linalg.norm(QUIET_FIELD))
    assert abs(np.nanmean(mean_b[:20]) / quiet - 1) < 0.05  # quiet before the flare
    assert abs(mag.peak_minute - peak) <= pd.Timedelta("5min")  # the wave moves it a little
    assert 2.7 < np.nanmax(mean_b) / quiet < 3.3  # x3 at the peak
    assert mean_b[-1] < 0.5 * np.nanmax(mean_b)  # and decays with the flare
    # one bucket: the magnetometer beside the AIA channel in catalog.json
    assert '"id": "mag_demo"' in catalog and '"id": "aia_0094"' in catalog
    assert '"filetype": "cdf"' in catalog


def test_magnetometer_is_deterministic_and_checks_its_arguments(mem_root):
    fs = fsspec.filesystem("memory")
    run = dict(start="2020-12-31T22:00", stop="2020-12-31T22:20", file_length="10min")
    a = write_demo_series(mem_root, **run)
    first = [fs.cat_file(k) for k in a.datakeys]
    b = write_demo_series(mem_root, **run)
    assert [fs.cat_file(k) for k in b.datakeys] == first
    assert (a.datakeys, a.minutes, a.gap) == (b.datakeys, b.minutes, b.gap)
    np.testing.assert_array_equal(a.mean_b, b.mean_b)  # NaN in the gap in both
    c = write_demo_series(mem_root, **run, seed=1, gap=False)
    assert c.mean_b != a.mean_b and c.gap == () and not np.isnan(c.mean_b).any()
    with pytest.raises(DemoDataError, match="must be after"):
        write_demo_series(mem_root, start="2021-01-01", stop="2020-12-31")


# ----------------------------------------------------------------------------- the figure


def _failed_marks(ax):
    """The marker lines drawn in the x axis' blended transform (x data, y axes units)."""
    blended = ax.get_xaxis_transform()
    return [
        line
        for line in ax.get_lines()
        if line.get_transform() == blended and line.get_marker() not in (None, "None", "")
    ]


def test_irradiance_figure_marks_failed_frames_on_the_time_axis_with_units_and_dates():
    import dask.array as da
    import matplotlib.pyplot as plt
    import xarray as xr

    from intake_helio.app.plots import irradiance_figure
    from intake_helio.compute.reduction import irradiance

    n = 16
    data = (
        np.full((n, 4, 4), 100.0, dtype=np.float32) + np.arange(n, dtype=np.float32)[:, None, None]
    )
    data[5] = np.nan  # a failed frame ("all pixels blank")
    frames = xr.DataArray(
        da.from_array(data, chunks=(1, 4, 4)),
        dims=("time", "y", "x"),
        coords={
            "time": pd.date_range("2020-12-31T22:00", periods=n, freq="4min"),
            "datakey": ("time", [f"memory://f{i}.fits" for i in range(n)]),
        },
        attrs={"units": "DN/s", "dataset": "aia_0094", "title": "AIA 94"},
    )
    result = irradiance(frames, progress=False)
    fig = irradiance_figure(result)
    try:
        (ax,) = fig.axes
        assert "[DN/s]" in ax.get_ylabel()
        assert "2020-12-31 22:00 \N{EN DASH} 23:00 UTC" in ax.get_title()
        (marks,) = _failed_marks(ax)
        assert marks.get_marker() == "x"
        np.testing.assert_array_equal(marks.get_ydata(), [0.02])  # axes units, not data
        # without units the y axis says DN
        del result["irradiance"].attrs["units"]
        plt.close(fig)
        fig = irradiance_figure(result)
        assert fig.axes[0].get_ylabel().endswith("[DN]")
        # a series (the demo's |B|) is a second panel under it, on the same time axis
        plt.close(fig)
        times = pd.date_range("2020-12-31T22:00", periods=61, freq="1min")
        b = xr.DataArray(np.linspace(5, 9, 61), dims="minute", coords={"minute": times}, name="B")
        b.attrs.update(units="nT", axis_label="|B|", long_name="|B| per minute", title="mag")
        fig = irradiance_figure(result, series=[b])
        top, bottom = fig.axes
        assert top.get_shared_x_axes().joined(top, bottom)
        assert bottom.get_ylabel() == "|B| [nT]" and bottom.get_title() == "mag"
        (line,) = bottom.get_lines()
        assert line.get_label() == "|B| per minute"
        np.testing.assert_array_equal(line.get_ydata(), b.to_numpy())
        assert bottom.get_xlabel() == "time (UTC)" and top.get_xlabel() == ""
    finally:
        plt.close(fig)
