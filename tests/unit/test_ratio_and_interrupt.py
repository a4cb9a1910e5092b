"""``ih.ratio`` of two channels and Ctrl-C in ``ih.irradiance`` keeping the finished parts
(in-memory frames, no sockets)."""

from __future__ import annotations

import _thread
import threading
import time

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import intake_helio as ih
from intake_helio.base.errors import ArgumentError

RNG = np.random.default_rng(7)


def _channels_result() -> xr.Dataset:
    times = pd.date_range("2020-06-01", periods=4, freq="12s")
    own = np.stack([times.to_numpy(), (times + pd.Timedelta("3s")).to_numpy()])
    return xr.Dataset(
        {
            "irradiance": (("channel", "time"), [[1.0, 2.0, 4.0, 8.0], [3.0, 3.0, np.nan, 2.0]]),
            "status": (
                ("channel", "time"),
                np.array([["ok", "ok", "ok", "truncated"], ["ok", "ok", "truncated", "ok"]]),
            ),
            "frame_time": (("channel", "time"), own),
        },
        coords={"channel": ["aia_0094", "aia_0171"], "time": times},
    )


def test_ratio_divides_channels_frame_by_frame_with_each_channels_time():
    result = _channels_result()
    result["irradiance"].attrs["units"] = "DN/s"
    r = ih.ratio(result, "aia_0171", "aia_0094")
    np.testing.assert_array_equal(r.to_numpy(), [3.0, 1.5, np.nan, np.nan])  # failed: NaN
    assert r.name == "aia_0171/aia_0094" and r.attrs["units"] == "1"
    np.testing.assert_array_equal(r["aia_0171_frame_time"], result["frame_time"][1])
    np.testing.assert_array_equal(r["aia_0094_frame_time"], result["frame_time"][0])
    assert r["aia_0094_status"].values.tolist() == ["ok", "ok", "ok", "truncated"]


def test_ratio_names_what_is_wrong():
    result = _channels_result()
    with pytest.raises(ArgumentError, match=r"channel 'aia_0335' is not in the result; .*"):
        ih.ratio(result, "aia_0335", "aia_0094")
    with pytest.raises(ArgumentError, match=r"needs a result of several channels"):
        ih.ratio(result.sel(channel="aia_0094"), "aia_0171", "aia_0094")


def _slow_frames(n: int, delay: float) -> xr.DataArray:
    data = RNG.normal(300, 40, (n, 6, 5)).astype(np.float32)

    def slow(block):
        time.sleep(delay)
        return block

    arr = da.from_array(data, chunks=(1, 6, 5)).map_blocks(slow, dtype=np.float32)
    return xr.DataArray(
        arr,
        dims=("time", "y", "x"),
        coords={
            "time": pd.date_range("2021-03-01", periods=n, freq="12s"),
            "datakey": ("time", [f"memory://f{i}.fits" for i in range(n)]),
        },
        attrs={"units": "DN"},
    ), data


def test_ctrl_c_keeps_the_parts_finished_so_far():
    frames, data = _slow_frames(12, 0.15)
    done: list[int] = []

    def on_part(number, df):
        done.append(number)
        if len(done) == 2:  # Ctrl-C arrives while the next parts are being computed
            threading.Timer(0.05, _thread.interrupt_main).start()

    with dask.config.set(scheduler="synchronous"), pytest.raises(ih.InterruptedRun) as info:
        ih.irradiance(frames, progress=False, part_size=2, on_part=on_part)
        time.sleep(5)  # pragma: no cover - only if the interrupt never came
    err = info.value
    assert isinstance(err, KeyboardInterrupt) and not isinstance(err, Exception)
    assert isinstance(err.__cause__, KeyboardInterrupt)
    assert err.done == sorted(done) and len(err.done) >= 2
    partial = err.partial
    assert partial.sizes["time"] == 2 * len(err.done) < 12
    want = [data[i].mean(dtype=np.float64) for p in err.done for i in (2 * p, 2 * p + 1)]
    np.testing.assert_allclose(partial["irradiance"].to_numpy(), want, rtol=1e-6)
    assert "exc.partial" in str(err) and "skip=exc.done" in str(err)

    # the rest, computed with skip: together they are the whole result
    rest = ih.irradiance(frames, progress=False, part_size=2, skip=err.done)
    whole = xr.concat([partial, rest], dim="time").sortby("time")
    np.testing.assert_allclose(whole["irradiance"], data.mean(axis=(1, 2), dtype=np.float64), 1e-6)


def test_ctrl_c_in_the_second_channel_keeps_the_first_and_the_finished_parts():
    a, data_a = _slow_frames(6, 0.01)
    b, data_b = _slow_frames(6, 0.15)
    chans = xr.Dataset(
        {
            "aia_0094": a.drop_vars("datakey").assign_coords(aia_0094_datakey=a["datakey"]),
            "aia_0171": b.drop_vars("datakey").assign_coords(
                aia_0171_datakey=("time", [f"memory://g{i}.fits" for i in range(6)])
            ),
        }
    )
    seen: list[int] = []

    def on_part(number, df):
        seen.append(number)
        if len(seen) == 3 + 1:  # the first channel's 3 parts, then one of the second's
            threading.Timer(0.05, _thread.interrupt_main).start()

    with dask.config.set(scheduler="synchronous"), pytest.raises(ih.InterruptedRun) as info:
        ih.irradiance(chans, progress=False, part_size=2, on_part=on_part)
        time.sleep(5)  # pragma: no cover - only if the interrupt never came
    err = info.value
    assert "channel 'aia_0171'" in str(err) and "skip=exc.done" in str(err)
    assert err.done["aia_0094"] == [0, 1, 2] and 1 <= len(err.done["aia_0171"]) < 3
    partial = err.partial
    assert list(partial["channel"].values) == ["aia_0094", "aia_0171"]
    assert partial.sizes["time"] == 6
    np.testing.assert_allclose(
        partial["irradiance"].sel(channel="aia_0094"), data_a.mean(axis=(1, 2)), rtol=1e-6
    )
    second = partial.sel(channel="aia_0171")
    computed = second["status"].values == "ok"
    assert computed.sum() == 2 * len(err.done["aia_0171"])
    assert set(second["status"].values[~computed]) == {"not computed (interrupted)"}
    np.testing.assert_allclose(
        second["irradiance"].values[computed], data_b.mean(axis=(1, 2))[computed], rtol=1e-6
    )

    # the rest: skip=exc.done per channel computes only the second channel's missing parts
    rest = ih.irradiance(chans, progress=False, part_size=2, skip=err.done)
    assert (rest["status"].sel(channel="aia_0094") == "not computed (interrupted)").all()
    got = rest.sel(channel="aia_0171")
    todo = got["status"].values == "ok"
    np.testing.assert_array_equal(todo, ~computed)
    np.testing.assert_allclose(
        got["irradiance"].values[todo], data_b.mean(axis=(1, 2))[todo], rtol=1e-6
    )
