"""The time axis a user chooses (issue 28 item 2): the exposure's start or T_OBS.

Real local S3 (moto), demo files with AEC exposures (EXPTIME shortens at the flare), so
T_OBS - DATE-OBS differs frame to frame. The truth is read from each file with astropy.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import job_argv

FRAMES = 10


@pytest.fixture
def served(s3):
    so = s3.storage_options
    s3.reset()
    a = write_demo_dataset("s3://helio-demo/", so, frames=FRAMES, size=32, corrupt=1)
    b = write_demo_dataset(
        "s3://helio-demo/",
        so,
        frames=FRAMES,
        size=32,
        corrupt=0,
        wavelength=171,
        start=a.start + pd.Timedelta(seconds=3),
        seed=7,
    )
    return ih.open_bucket("s3://helio-demo/", so), a, b, s3.filesystem()


def _t_obs(fs, d) -> np.ndarray:
    """Each file's T_OBS as astropy reads it (NaT for a truncated file)."""
    out = []
    for key in d.datakeys:
        if key in d.corrupt:
            out.append(np.datetime64("NaT", "ns"))
            continue
        with fs.open(key.removeprefix("s3://")) as f:
            text = fits.getheader(f, 1)["T_OBS"]
        out.append(pd.Timestamp(text).tz_localize(None).as_unit("ns").to_datetime64())
    return np.array(out, dtype="datetime64[ns]")


def test_t_obs_axis_is_each_frames_mid_exposure(served):
    bucket, a, _, fs = served
    frames = bucket[a.dataset_id].to_dataarray(
        a.start, a.stop, on_error="nan", header_keys=["T_OBS"]
    )
    with dask.config.set(scheduler="threads"):
        start = ih.irradiance(frames, progress=False)
        mid = ih.irradiance(frames, progress=False, time="T_OBS")
    truth = _t_obs(fs, a)
    good = ~np.isnat(truth)
    assert (~good).sum() == 1
    # the exposures differ (AEC), so the offsets do: T_OBS is not a fixed shift of the start
    offsets = (truth[good] - np.array(a.times)[good]) / np.timedelta64(1, "ms")
    np.testing.assert_allclose(offsets, np.array(a.exptime)[good] * 500, atol=1)
    assert len(set(offsets)) > 1
    np.testing.assert_array_equal(mid["frame_time"].values[good], truth[good])
    np.testing.assert_array_equal(mid["time"].values, mid["frame_time"].values)
    # the truncated frame has no T_OBS: it keeps its start, and says its reason
    np.testing.assert_array_equal(mid["time"].values[~good], start["time"].values[~good])
    assert mid["status"].values[~good].tolist() == ["truncated"]
    assert "T_OBS" in mid.attrs["time_axis"] and "DATE-OBS" in start.attrs["time_axis"]
    assert "T_OBS" in mid["frame_time"].attrs["long_name"]
    np.testing.assert_array_equal(mid["irradiance"].values, start["irradiance"].values)


def test_t_obs_axis_of_two_channels_keeps_each_channels_own(served):
    bucket, a, b, fs = served
    chans = ih.open_channels(
        bucket, ["aia_0094", "aia_0171"], a.start, a.stop, header_keys=["T_OBS"]
    )
    with dask.config.set(scheduler="threads"):
        result = ih.irradiance(chans, progress=False, time="T_OBS", normalize=True)
    own = result["frame_time"].transpose("channel", "time").values
    t94, t171 = _t_obs(fs, a), _t_obs(fs, b)
    good = ~np.isnat(t94)
    np.testing.assert_array_equal(own[0][good], t94[good])
    np.testing.assert_array_equal(own[1], t171)
    np.testing.assert_array_equal(result["time"].values, own[0])  # the first channel's
    assert "first channel" in result.attrs["time_axis"]


def test_t_obs_without_the_card_or_a_wrong_name_is_refused(served):
    bucket, a, _, _ = served
    frames = bucket[a.dataset_id].to_dataarray(a.start, a.stop, on_error="nan")
    with pytest.raises(ih.HelioError, match=r"header_keys=\['T_OBS'\]"):
        ih.irradiance(frames, progress=False, time="T_OBS")
    with pytest.raises(ValueError, match=r"time='mid' is not a time axis.*'start'.*'T_OBS'"):
        ih.irradiance(frames, progress=False, time="mid")


def test_cli_time_t_obs_writes_mid_exposure_times(served, s3, tmp_path, capsys):
    import xarray as xr

    from intake_helio.app.cli import main

    _, a, b, fs = served
    out = tmp_path / "out"
    code = main(
        job_argv(
            "irradiance",
            a.root,
            ["aia_0094", "aia_0171"],
            a.start,
            a.stop,
            out,
            "--time",
            "T_OBS",
            endpoint_url=s3.endpoint_url,
            key=s3.key,
            secret=s3.secret,
        )
    )
    assert code == 3, capsys.readouterr()  # the truncated 94 frame is listed
    with xr.open_dataset(out / "irradiance.nc") as nc:
        own = nc["frame_time"].transpose("channel", "time").values
        axis = nc["time"].values
        assert "T_OBS" in nc.attrs["time_axis"]
    t94, t171 = _t_obs(fs, a), _t_obs(fs, b)
    good = ~np.isnat(t94)
    np.testing.assert_array_equal(own[0][good], t94[good])
    np.testing.assert_array_equal(own[1], t171)
    np.testing.assert_array_equal(axis, own[0])
