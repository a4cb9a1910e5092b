"""The frame engine on a real ``LocalCluster`` (worker processes) over the local S3 server.

Every selection kind reaches the read tasks (``resolve`` finds files and window) and gives,
for every frame, astropy's value or the frame's reason; arrays changed by arithmetic take
the generic path with the same contract; a pickled array works in another process.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import warnings

import distributed
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import intake_helio as ih
from intake_helio.compute.engine import map_frames
from intake_helio.frames.spec import resolve
from intake_helio.testing.demo_data import write_demo_dataset

FRAMES = 14
SIZE = 64


@pytest.fixture(scope="module")
def served(s3_server):
    s3_server.reset()
    demo = write_demo_dataset(
        "s3://helio-demo/", s3_server.storage_options, frames=FRAMES, size=SIZE
    )
    fs = s3_server.filesystem()
    truth = {}
    for key in demo.datakeys:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(io.BytesIO(fs.cat_file(key))) as hdul:
                    truth[key] = (
                        np.array(hdul[1].data, dtype=np.float32),
                        float(hdul[1].header["EXPTIME"]),
                    )
        except (OSError, ValueError, TypeError, IndexError):
            truth[key] = None  # the deliberately truncated frame
    yield s3_server, demo, truth
    s3_server.reset()


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as c,
    ):
        yield c


def _frames(served, **kwargs) -> xr.DataArray:
    s3, demo, _ = served
    bucket = ih.open_bucket(demo.root, storage_options=s3.storage_options)
    return bucket[demo.dataset_id].to_dataarray(demo.start, demo.stop, **kwargs)


def _expected(served, keys, stat, window=(slice(None), slice(None)), normalize=False):
    _, _, truth = served
    out = []
    for key in keys:
        t = truth[key]
        if t is None:
            out.append(np.nan)
            continue
        data = t[0][window].astype(np.float32)
        if normalize:
            data = data / np.float32(t[1])
        out.append(float(getattr(np, f"nan{stat}")(data.astype(np.float64))))
    return np.array(out)


def _check_status(served, result):
    _, demo, _ = served
    for key, status in zip(result["datakey"].values, result["status"].values, strict=True):
        assert status == ("truncated" if key in demo.corrupt else "ok"), (key, status)


SELECTIONS = {
    "isel slice": lambda a: a.isel(time=slice(2, 11)),
    "isel list": lambda a: a.isel(time=[0, 5, 3, 9, 13]),
    "step": lambda a: a[::2],
    "bool mask": lambda a: a.isel(time=np.arange(a.sizes["time"]) % 3 != 1),
    "sel time": lambda a: a.sel(time=slice(a.time.values[1], a.time.values[8])),
    "y/x window": lambda a: a.isel(y=slice(10, 30), x=slice(5, 60)),
    "concat": lambda a: xr.concat([a.isel(time=slice(0, 3)), a.isel(time=[10, 12])], "time"),
    "pickled": lambda a: pickle.loads(pickle.dumps(a[1::3])),
}


@pytest.mark.parametrize("on_error", ["raise", "nan"])
@pytest.mark.parametrize("how", list(SELECTIONS))
def test_every_selection_reads_in_tasks_on_a_local_cluster(served, client, how, on_error):
    frames = SELECTIONS[how](_frames(served, on_error=on_error))
    assert resolve(frames) is not None  # the fast path: files and window found in the graph
    ys, xs = frames["y"].values, frames["x"].values
    window = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    keys = list(frames["datakey"].values)

    irr = ih.irradiance(frames, progress=False)
    np.testing.assert_allclose(
        irr["irradiance"].values, _expected(served, keys, "mean", window), rtol=1e-6
    )
    _check_status(served, irr)
    assert list(irr["datakey"].values) == keys

    stats = map_frames(frames, ["mean", "max", "min", "std", "sum"], progress=False)
    for stat in ("mean", "max", "min", "std", "sum"):
        np.testing.assert_allclose(
            stats[stat].values, _expected(served, keys, stat, window), rtol=1e-6, err_msg=stat
        )
    _check_status(served, stats)


def test_generic_path_on_a_cluster_keeps_the_contract(served, client):
    """``where`` and arithmetic: computed by dask per frame, a value or a reason for each."""
    frames = _frames(served)  # on_error="raise": the bad frame's read raises in its task
    changed = frames.where(frames > 0) * 1.0
    assert resolve(changed) is None
    keys = list(changed["datakey"].values)
    result = ih.irradiance(changed, progress=False, normalize=True)
    _, _, truth = served
    want = []
    for key in keys:
        t = truth[key]
        if t is None:
            want.append(np.nan)
            continue
        d = np.where(t[0] > 0, t[0], np.nan).astype(np.float32) / np.float32(t[1])
        want.append(float(np.nanmean(d.astype(np.float64))))
    np.testing.assert_allclose(result["irradiance"].values, want, rtol=1e-6)
    _check_status(served, result)


def test_a_raising_function_fails_only_its_frame(served, client):
    frames = _frames(served, on_error="nan")
    bad_time = str(frames["time"].values[4])[:19]

    def peak(data, header):
        if header["DATE-OBS"].startswith(bad_time):
            raise ValueError("no peak in this one")
        return np.nanmax(data)

    result = map_frames(frames, [peak, "mean"], progress=False)
    status = list(result["status"].values)
    assert status[4] == "function error: peak raised ValueError: no peak in this one"
    assert np.isnan(result["peak"].values[4]) and np.isnan(result["mean"].values[4])
    keys = list(result["datakey"].values)
    want = _expected(served, keys, "max")
    good = [i for i in range(len(keys)) if i != 4]
    np.testing.assert_allclose(result["peak"].values[good], want[good], rtol=1e-6)


def test_array_and_dict_outputs(served, client):
    frames = _frames(served, on_error="nan")

    def profile(data, header):
        return np.nanmean(data, axis=1)  # one value per row

    def percentiles(data, header):
        return {"p50": np.nanpercentile(data, 50), "p99": np.nanpercentile(data, 99)}

    def binned(data, header):
        return np.nanmean(data.reshape(8, SIZE // 8, 8, SIZE // 8), axis=(1, 3))

    result = map_frames(frames, [profile, percentiles, binned], progress=False)
    assert result["profile"].dims == ("time", "profile_dim_0")
    assert result["profile"].shape == (FRAMES, SIZE)
    assert result["binned"].shape == (FRAMES, 8, 8)
    assert set(result.data_vars) >= {"profile", "p50", "p99", "binned", "status"}
    _, _, truth = served
    for i, key in enumerate(result["datakey"].values):
        if truth[key] is None:
            assert np.isnan(result["profile"].values[i]).all()
            continue
        np.testing.assert_allclose(
            result["profile"].values[i], np.nanmean(truth[key][0], axis=1), rtol=1e-6
        )
        np.testing.assert_allclose(
            result["p99"].values[i], np.nanpercentile(truth[key][0], 99), rtol=1e-6
        )


def test_pickled_array_in_another_process(served, tmp_path):
    frames = _frames(served, on_error="nan")[::3]
    path = tmp_path / "frames.pkl"
    path.write_bytes(pickle.dumps(frames))
    code = (
        "import pickle, sys, json; import intake_helio as ih; "
        "from intake_helio.frames.spec import resolve; "
        f"f = pickle.loads(open({str(path)!r}, 'rb').read()); "
        "r = ih.irradiance(f, progress=False); "
        "print(json.dumps([resolve(f) is not None, list(map(float, r.irradiance.values)), "
        "list(r.status.values)]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    fast, values, status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fast
    keys = list(frames["datakey"].values)
    np.testing.assert_allclose(values, _expected(served, keys, "mean"), rtol=1e-6)
    _check_status(served, xr.Dataset({"status": ("t", status), "datakey": ("t", keys)}))


def test_a_frame_that_kills_its_worker_loses_only_itself(served):
    """The function kills the worker process on one frame: after dask's allowed failures that
    frame gets "worker died while reading"; every other frame, even of the same batch, is valued.
    """
    import dask

    frames = _frames(served, on_error="nan")
    victim = str(frames["datakey"].values[5])

    def killer(data, header):
        import os
        import signal

        if header["DATE-OBS"].startswith(killer.when):
            os.kill(os.getpid(), signal.SIGKILL)
        return float(np.nanmean(data))

    killer.when = str(frames["time"].values[5])[:19]
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as lc,
        distributed.Client(lc),
    ):
        result = map_frames(frames, [killer], progress=False, part_size=7)
    status = dict(zip(result["datakey"].values, result["status"].values, strict=True))
    _, demo, _ = served
    for key, st in status.items():
        if key == victim:
            assert st == "worker died while reading"
        else:
            assert st == ("truncated" if key in demo.corrupt else "ok"), (key, st)
    keys = list(result["datakey"].values)
    want = _expected(served, keys, "mean")
    good = [i for i, k in enumerate(keys) if k != victim]
    np.testing.assert_allclose(result["killer"].values[good], want[good], rtol=1e-6)


def test_progress_on_a_cluster_moves_per_task(served, client):
    from intake_helio.compute.engine import frame_funcs, iter_map_parts
    from intake_helio.compute.progress import Progress

    steps = []

    class Recording(Progress):
        def update(self, frames: int) -> None:
            steps.append(frames)

    frames = _frames(served, on_error="nan")
    parts = list(
        iter_map_parts(frames, frame_funcs("mean"), part_size=FRAMES, progress=Recording(None))
    )
    assert len(parts) == 1
    assert len(steps) > 1 and sum(steps) == FRAMES


def test_parts_in_flight_are_bounded_and_every_frame_is_valued(served, client):
    """14 parts of one frame, one frame a task, 2 threads: at most 9 parts (4 tasks a thread,
    plus one) are submitted at once; the rest wait for a part to complete."""
    import dask

    from intake_helio.compute.engine import frame_funcs, iter_map_parts

    def pending(dask_scheduler) -> int:  # tasks the scheduler has yet to run
        busy = ("waiting", "queued", "no-worker", "processing")  # not earlier tests' "released"
        return sum(ts.state in busy for ts in dask_scheduler.tasks.values())

    frames = _frames(served, on_error="nan")
    held = []
    with dask.config.set({"intake_helio.batch-size": 1, "intake_helio.batch-bytes": 0}):
        for _, _, records in iter_map_parts(frames, frame_funcs("mean"), part_size=1):
            held.append(client.run_on_scheduler(pending))
            assert len(records) == 1 and records[0][1] in ("ok", "truncated")
    assert len(held) == FRAMES
    assert max(held) <= 9 < FRAMES, held
