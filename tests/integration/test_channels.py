"""``ih.open_channels``: several datasets on one time axis, reduced to ``(channel, time)``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset

N = 8
CUT = dict(y=slice(4, 14))


@pytest.fixture
def two_channels(s3):
    so = s3.storage_options
    a = write_demo_dataset("s3://helio-demo/", so, frames=N, size=32, corrupt=0)
    # a second channel 3 s later, two frames short at the end, one of them corrupt
    b = write_demo_dataset(
        "s3://helio-demo/",
        so,
        frames=N - 2,
        size=32,
        corrupt=1,
        dataset_id="aia_0171",
        start=a.start + pd.Timedelta(seconds=3),
        seed=7,
    )
    return ih.open_bucket("s3://helio-demo/", so), a, b


def test_channels_share_the_first_ones_time_axis(two_channels):
    bucket, a, b = two_channels
    ds = ih.open_channels(bucket, ["aia_0094", "aia_0171"], a.start, a.stop, tolerance="6s")
    assert list(ds.data_vars) == ["aia_0094", "aia_0171"]
    assert ds.sizes == {"time": N, "y": 32, "x": 32}
    np.testing.assert_array_equal(
        ds["time"].values,
        pd.DatetimeIndex(pd.date_range(a.start, periods=N, freq="4min")).to_numpy(),
    )
    keys = list(ds["aia_0171_datakey"].values)
    assert keys[: N - 2] == list(b.datakeys) and keys[N - 2 :] == ["", ""]
    offsets = ds["aia_0171_frame_time"].values[: N - 2] - ds["time"].values[: N - 2]
    assert (offsets == np.timedelta64(3, "s")).all()

    result = ih.irradiance(ds, progress=False)
    assert result["irradiance"].dims == ("channel", "time")
    assert list(result["channel"].values) == ["aia_0094", "aia_0171"]
    assert result["status"].shape == (2, N)
    np.testing.assert_allclose(result["irradiance"].values[0], a.expected_mean, rtol=1e-6)
    np.testing.assert_allclose(result["irradiance"].values[1, : N - 2], b.expected_mean, rtol=1e-6)
    status = list(result["status"].values[1])
    bad = b.datakeys.index(b.corrupt[0])
    assert status[bad] == "truncated"
    assert status[N - 2 :] == ["no frame within tolerance"] * 2
    assert [s for i, s in enumerate(status) if i != bad and i < N - 2] == ["ok"] * (N - 3)

    stats = ih.map_frames(ds, ["max", "count"], progress=False)
    assert stats["max"].dims == ("channel", "time")


def test_a_channel_with_no_frame_within_tolerance_at_all_is_all_nan_with_the_reason(two_channels):
    bucket, a, _ = two_channels
    ids = ["aia_0094", "aia_0171"]
    with pytest.warns(ih.HelioWarning, match=r"'aia_0171' has no frame within tolerance='1s'"):
        ds = ih.open_channels(bucket, ids, a.start, a.stop, tolerance="1s", cutout=CUT)
    assert ds["aia_0171"].shape == ds["aia_0094"].shape == (N, 10, 32)
    assert list(ds["aia_0171_datakey"].values) == [""] * N
    result = ih.irradiance(ds, progress=False)
    assert result["irradiance"].dims == ("channel", "time")
    assert list(result["status"].values[1]) == ["no frame within tolerance"] * N
    assert np.isnan(result["irradiance"].values[1]).all()
    np.testing.assert_allclose(
        result["irradiance"].values[0],
        ih.irradiance(bucket["aia_0094"].to_dataarray(a.start, a.stop, cutout=CUT), progress=False)[
            "irradiance"
        ].values,
        rtol=1e-6,
    )
    assert np.isnan(ds["aia_0171"].values).all()  # the lazy frames too, read from nowhere


def test_bad_channel_arguments(two_channels):
    bucket, a, _ = two_channels
    with pytest.raises(ih.HelioError, match="expected a list of dataset ids"):
        ih.open_channels(bucket, "aia_0094", a.start, a.stop)
    with pytest.raises(ih.HelioError, match="expected a duration"):
        ih.open_channels(bucket, ["aia_0094", "aia_0171"], a.start, a.stop, tolerance="soon")
    with pytest.raises(KeyError):
        ih.open_channels(bucket, ["aia_0094", "aia_9999"], a.start, a.stop)


def test_an_arcsec_box_is_one_pixel_window_for_every_channel(two_channels):
    bucket, a, _ = two_channels
    box = dict(Tx=slice(-400, 300), Ty=slice(-250, 500))
    ds = ih.open_channels(bucket, ["aia_0094", "aia_0171"], a.start, a.stop, cutout=box)
    alone = bucket["aia_0094"].to_dataarray(a.start, a.stop, cutout=box, on_error="nan")
    assert ds["aia_0094"].shape == ds["aia_0171"].shape == alone.shape
    assert alone.shape[1:] != (32, 32)  # a real window, not the whole frame
    np.testing.assert_array_equal(ds["y"].values, alone["y"].values)
    np.testing.assert_array_equal(ds["x"].values, alone["x"].values)
    np.testing.assert_allclose(ds["aia_0094_Tx"].values, alone["Tx"].values)
    assert "aia_0171_Tx" in ds.coords  # each channel keeps its own coordinates
    np.testing.assert_array_equal(ds["aia_0094"].values, alone.values)
