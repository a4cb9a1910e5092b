"""The demo's truth through the library (issue 28 item 5): local S3, catalog, cutouts, DN/s.

A run written into the local S3 server is read back with ``to_dataarray`` and reduced with
``ih.irradiance``: the whole-frame light curve in DN dips at the flare (the exposure
shortens) while in DN/s it rises; a cutout on the flaring region rises by ~the channel's
flare amplitude while one on quiet Sun stays flat; an index search ends each frame with its
exposure; the demo's magnetometer (CDF files, issue 22) read through the catalog gives each
minute's mean ``|B|`` of the generator's truth, and the demo's check fails when it does not.
"""

from __future__ import annotations

import dataclasses

import dask
import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.app.demo import check_magnetometer, magnetometer_curve
from intake_helio.testing.aia import flare_amplitude
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.demo_series import write_demo_series

FRAMES = 16


@pytest.fixture
def demo(s3):
    so = s3.storage_options
    ds = write_demo_dataset("s3://helio-demo/", so, frames=FRAMES, size=64, corrupt=1)
    dataset = ih.open_bucket(ds.root, so)[ds.dataset_id]
    return ds, dataset


def _curve(dataset, ds, normalize: bool, cutout=None):
    frames = dataset.to_dataarray(ds.start, ds.stop, on_error="nan", cutout=cutout)
    with dask.config.set(scheduler="threads"):
        result = ih.irradiance(frames, normalize=normalize, progress=False)
    return result


def test_light_curves_match_the_truth_in_dn_and_dn_per_s(demo):
    ds, dataset = demo
    good = ~np.isnan(ds.expected_mean)
    dn = _curve(dataset, ds, normalize=False)
    rate = _curve(dataset, ds, normalize=True)
    assert rate["irradiance"].attrs["units"] == "DN/s"
    assert list(dn["datakey"].values) == list(ds.datakeys)
    np.testing.assert_allclose(
        dn["irradiance"].values[good], np.array(ds.expected_mean)[good], 1e-6
    )
    np.testing.assert_allclose(
        rate["irradiance"].values[good], np.array(ds.expected_rate)[good], rtol=1e-6
    )
    assert list(dn["status"].values[~good]) == ["truncated"]
    # the exposure shortens at the flare: DN dips, DN/s rises
    i_peak = int(np.argmax(ds.flare_factor))
    assert ds.exptime[i_peak] < 0.5 * ds.exptime[0]
    assert dn["irradiance"].values[i_peak] < 0.6 * dn["irradiance"].values[0]
    assert rate["irradiance"].values[i_peak] > 1.1 * rate["irradiance"].values[0]


def test_a_cutout_isolates_the_flare(demo):
    ds, dataset = demo
    good = ~np.isnan(ds.expected_mean)
    i_peak = int(np.argmax(ds.flare_factor))
    amplitude = flare_amplitude(ds.wavelength)
    curves = {}
    for name in ("flare", "quiet", "corner"):
        got = _curve(dataset, ds, normalize=True, cutout=ds.box(name).cutout)
        values = got["irradiance"].values
        np.testing.assert_allclose(values[good], ds.box_rate(name)[good], rtol=1e-6)
        curves[name] = values
    flare, quiet, corner = curves["flare"], curves["quiet"], curves["corner"]
    assert 0.85 * amplitude < flare[i_peak] / flare[0] <= 1.02 * amplitude
    assert np.nanmax(np.abs(quiet[good] / quiet[0] - 1)) < 0.03
    assert abs(corner[i_peak] / np.nanmean(corner[good]) - 1) < 0.15  # faint, noisy, flat


def test_index_rows_end_with_the_exposure(demo):
    ds, dataset = demo
    files = dataset.files()
    assert list(files["datakey"]) == list(ds.datakeys)
    ends = pd.DatetimeIndex(files["stop"]) - pd.DatetimeIndex(files["start"])
    np.testing.assert_array_equal(ends, pd.to_timedelta(ds.exptime, unit="s"))
    # [22:01, 22:05) holds the 22:04 frame only: the 22:00 one ended at 22:00:02.9
    some = dataset.files("2020-12-31T22:01", "2020-12-31T22:05")
    assert list(some["datakey"]) == [ds.datakeys[1]]


def test_the_magnetometer_through_the_catalog_is_the_truth(demo, s3):
    ds, _ = demo
    so = s3.storage_options
    mag = write_demo_series(ds.root, so, start=ds.start, stop=ds.stop, flare=ds.flare)
    bucket = ih.open_bucket(ds.root, so)
    assert bucket[mag.dataset_id].filetype == "cdf" and ds.dataset_id in bucket.datasets
    got = magnetometer_curve(ds.root, mag, so)
    assert got.sizes == {"time": 64 * 60, "minute": 64, "file": 3}  # 16 x 4 min, 30-min files
    assert list(got["datakey"].values) == list(mag.datakeys)
    assert check_magnetometer(got, mag) < 1e-12
    np.testing.assert_allclose(got["B_minute"], mag.mean_b, rtol=1e-12, equal_nan=True)
    # the check can fail: a value off by 1e-4, the gap a minute later, a minute missing
    off = np.array(mag.mean_b)
    off[30] *= 1 + 1e-4
    assert 0.9e-4 < check_magnetometer(got, dataclasses.replace(mag, mean_b=tuple(off))) < 2e-4
    moved = np.roll(np.array(mag.mean_b), 1)
    assert check_magnetometer(got, dataclasses.replace(mag, mean_b=tuple(moved))) == np.inf
    short = dataclasses.replace(mag, minutes=mag.minutes[:-1], mean_b=mag.mean_b[:-1])
    assert check_magnetometer(got, short) == np.inf
