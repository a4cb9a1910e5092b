"""The frame engine on the local scheduler over in-memory FITS files (no sockets).

Built-ins equal numpy's nan-functions on astropy's float data for every selection kind;
the fast path is taken for selections (``resolve``) and the generic one for changed arrays,
with the same contract: a value or a reason for every frame.
"""

from __future__ import annotations

import io
import pickle
import warnings

import dask
import fsspec
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from astropy.io import fits

import intake_helio as ih
from intake_helio.base.reasons import FAILURE_REASONS, Reason, reason_of
from intake_helio.compute.engine import EngineError, frame_funcs, iter_map_parts, map_frames
from intake_helio.compute.progress import Progress
from intake_helio.frames.spec import resolve
from intake_helio.testing.aia import frame_bytes, make_aia_frame

N = 7
SIZE = 48
BAD = 4  # truncated
STATS = ["mean", "sum", "min", "max", "std", "count"]


@pytest.fixture(scope="module")
def files():
    fs = fsspec.filesystem("memory")
    rows, truth = [], {}
    t0 = pd.Timestamp("2021-05-01T00:00")
    for i in range(N):
        t = t0 + pd.Timedelta(minutes=4 * i)
        raw = frame_bytes(make_aia_frame(t, size=SIZE, seed=i, exptime=2.0 + 0.1 * i))
        path = f"/engine/f{i}.fits"
        fs.pipe_file(path, raw if i != BAD else raw[:4000])
        key = f"memory://{path}"
        if i != BAD:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(io.BytesIO(raw)) as hdul:
                    truth[key] = (np.array(hdul[1].data, np.float32), hdul[1].header["EXPTIME"])
        else:
            truth[key] = None
        rows.append({"start": t, "stop": t + pd.Timedelta(seconds=3), "datakey": key})
    yield pd.DataFrame(rows), truth
    fs.rm("/engine", recursive=True)


def _open(files, **kwargs):
    df, _ = files
    kwargs.setdefault("on_error", "nan")
    return ih.open_frames(df, **kwargs)


def _want(files, frames, stat, normalize=False):
    _, truth = files
    ys, xs = frames["y"].values, frames["x"].values
    out = []
    for key in frames["datakey"].values:
        t = truth[key]
        if t is None:
            out.append(0 if stat == "count" else np.nan)
            continue
        d = t[0][np.ix_(ys, xs)]
        if normalize:
            d = d / np.float32(t[1])
        if stat == "count":
            out.append(int(np.count_nonzero(~np.isnan(d))))
        else:
            out.append(float(getattr(np, f"nan{stat}")(d.astype(np.float64))))
    return np.array(out)


SELECT = {
    "all": lambda a: a,
    "slice": lambda a: a.isel(time=slice(1, 6)),
    "list": lambda a: a.isel(time=[6, 0, 4, 2]),
    "step": lambda a: a[::3],
    "mask": lambda a: a.isel(time=np.array([1, 0, 1, 1, 1, 0, 1], bool)),
    "window": lambda a: a.isel(y=slice(5, 30), x=slice(12, 40)),
    "strided window": lambda a: a.isel(y=slice(0, 40, 3), x=[1, 7, 9, 30]),
    "concat": lambda a: xr.concat([a[4:], a[:2]], "time"),
    "pickle": lambda a: pickle.loads(pickle.dumps(a[2:])),
    "rechunk": lambda a: a.chunk({"time": 3}),
}


@pytest.mark.parametrize("how", list(SELECT))
def test_builtins_equal_numpy_on_every_selection(files, how):
    frames = SELECT[how](_open(files))
    assert resolve(frames) is not None
    result = map_frames(frames, STATS, progress=False)
    for stat in STATS:
        np.testing.assert_allclose(
            result[stat].values, _want(files, frames, stat), rtol=1e-6, err_msg=stat
        )
    assert result["count"].dtype == np.int64
    keys = list(frames["datakey"].values)
    assert list(result["datakey"].values) == keys
    want = ["truncated" if k.endswith(f"f{BAD}.fits") else "ok" for k in keys]
    assert list(result["status"].values) == want


def test_changed_arrays_take_the_generic_path_with_the_same_contract(files):
    for on_error in ("raise", "nan"):
        frames = _open(files, on_error=on_error)
        changed = frames + 0.0
        assert resolve(changed) is None
        result = map_frames(changed, ["mean", "max"], progress=False, part_size=3)
        np.testing.assert_allclose(result["mean"].values, _want(files, frames, "mean"), rtol=1e-6)
        assert list(result["status"].values) == ["ok"] * BAD + ["truncated"] + ["ok"] * (
            N - BAD - 1
        )
        # normalize: EXPTIME read from each frame's header (no EXPTIME coordinate)
        norm = ih.irradiance(changed, normalize=True, progress=False)
        np.testing.assert_allclose(
            norm["irradiance"].values, _want(files, frames, "mean", normalize=True), rtol=1e-6
        )


def test_normalize_on_the_fast_path_divides_by_each_exptime(files):
    frames = _open(files)[1:]
    result = ih.irradiance(frames, normalize=True, progress=False)
    np.testing.assert_allclose(
        result["irradiance"].values, _want(files, frames, "mean", normalize=True), rtol=1e-6
    )
    assert result["irradiance"].attrs["units"] == "DN/s"


def test_user_functions_see_float32_data_and_a_read_only_header(files):
    seen = {}

    def probe(data, header):
        seen["dtype"] = data.dtype
        with pytest.raises(TypeError):
            header["EXPTIME"] = 1  # read-only
        return header["exptime"]  # case-insensitive lookup

    frames = _open(files)
    result = map_frames(frames, probe, progress=False)
    _, truth = files
    want = [np.nan if truth[k] is None else truth[k][1] for k in frames["datakey"].values]
    np.testing.assert_allclose(result["probe"].values, want)
    assert seen["dtype"] == np.float32


def test_a_function_returning_rubbish_gets_a_reason(files):
    def label(data, header):
        return "bright"

    result = map_frames(_open(files)[:2], [label, "mean"], progress=False)
    assert all(
        s.startswith("function error: label raised TypeError: returned str")
        for s in result["status"].values
    )
    assert reason_of(result["status"].values[0]) is Reason.FUNCTION_ERROR


def test_bad_func_arguments_are_clear():
    with pytest.raises(EngineError, match="'mediam' is not a built-in statistic"):
        frame_funcs("mediam")
    for bad in ("p101", "p-1", "p", "p99.1234567"):
        with pytest.raises(EngineError, match=r"a percentile p<q> \(0 <= q <= 100"):
            frame_funcs(bad)
    assert frame_funcs(["median", "p99", "p99.9", "p0"]) == [
        ("median", "median"),
        ("p99", "p99"),
        ("p99.9", "p99.9"),
        ("p0", "p0"),
    ]
    with pytest.raises(EngineError, match="expected a statistic name"):
        frame_funcs(3)
    with pytest.raises(EngineError, match=r"two outputs named \['f'\]"):
        frame_funcs([f, f])


def f(data, header):
    return 1.0


def test_every_reason_is_listed_once():
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert Reason.OK not in FAILURE_REASONS
    assert reason_of("truncated") is Reason.TRUNCATED
    with pytest.raises(ValueError, match="known reason"):
        reason_of("truncate")


def test_reason_of_a_quality_flag_with_its_flags():
    assert Reason.QUALITY_FLAG == "quality flag"
    assert reason_of("quality flag") is Reason.QUALITY_FLAG
    assert reason_of("quality flag 0x00000400") is Reason.QUALITY_FLAG
    assert reason_of("quality flag 0x80000000") is Reason.QUALITY_FLAG
    assert reason_of("quality flag: QUALITY is not an integer") is Reason.QUALITY_FLAG
    # the others keep their colon: a space-separated suffix is not theirs
    assert reason_of("function error: f raised ValueError: x") is Reason.FUNCTION_ERROR
    assert reason_of("no frame within tolerance") is Reason.NO_FRAME_WITHIN_TOLERANCE
    for status in ("truncated 0x00000400", "quality flags", "quality flag0x400", "quality"):
        with pytest.raises(ValueError, match="known reason"):
            reason_of(status)


def test_the_readme_lists_every_reason():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [r.value for r in Reason if f"| `{r.value}` |" not in readme]
    assert missing == []


class _Recording(Progress):
    def __init__(self):
        super().__init__(None)
        self.steps = []

    def update(self, frames: int) -> None:
        super().update(frames)
        self.steps.append(frames)


def test_progress_moves_per_task_not_per_part(files):
    frames = _open(files)
    bar = _Recording()
    parts = list(iter_map_parts(frames, frame_funcs("mean"), part_size=N, progress=bar))
    assert len(parts) == 1  # one part ...
    assert len(bar.steps) > 1 and sum(bar.steps) == N  # ... reported task by task


# --------------------------------------------------------------------------- the read layer
def _graph(arr) -> dict:
    """The tasks dask runs for ``arr`` (culled; not fused, so that keys keep their names)."""
    with dask.config.set({"optimization.fuse.active": False}):
        return dict(dask.optimize(arr)[0].__dask_graph__())


def _read_layer(frames):
    from intake_helio.frames.layers import FrameLayer

    (layer,) = [la for la in frames.data.dask.layers.values() if isinstance(la, FrameLayer)]
    return layer


def test_the_read_layer_makes_each_frames_task_when_asked(files):
    """No task per frame is held: each is made from the spec when dask asks for its key,
    and computing it reads that file (astropy's values)."""
    _, truth = files
    frames = _open(files, on_error="raise")
    layer = _read_layer(frames)
    assert not layer.is_materialized() and len(layer) == N and layer.keep is None
    for i, key in enumerate(frames["datakey"].values):
        task = layer[(layer.name, i, 0, 0)]
        assert task.args[0] == key
        if truth[key] is not None:
            np.testing.assert_array_equal(task({})[0], truth[key][0])
    with pytest.raises(KeyError):
        layer[(layer.name, N, 0, 0)]


@pytest.mark.parametrize("how", ["slice", "list", "step", "mask", "concat", "pickle"])
def test_a_selection_culls_the_layer_to_its_frames_and_keeps_each_status(files, how):
    df, _ = files
    frames = SELECT[how](_open(files))
    graph = _graph(frames.data)
    read = [k for k in graph if isinstance(k, tuple) and k[0].startswith("helio-read-")]
    keys = list(df["datakey"])
    assert sorted(k[1] for k in read) == sorted(keys.index(k) for k in frames["datakey"].values)
    want = ["truncated" if k.endswith(f"f{BAD}.fits") else "ok" for k in frames["datakey"].values]
    assert [reason_of(s) for s in frames["read_status"].values] == want


def test_a_mission_of_frames_is_built_without_a_task_per_frame():
    """1.5 million frames are a spec and a layer; a part of them culls to its own tasks."""
    n = 200_000
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/mission/000000.fits", frame_bytes(make_aia_frame("2020-01-01", size=32)))
    t = pd.date_range("2020-01-01", periods=n, freq="12s")
    df = pd.DataFrame(
        {"start": t, "datakey": [f"memory:///mission/{i:06d}.fits" for i in range(n)],
         "filesize": np.full(n, 20_000)}
    )  # fmt: skip
    frames = ih.open_frames(df)  # only the first file is probed: the others do not exist
    layer = _read_layer(frames)
    assert len(layer) == n and not layer.is_materialized()
    part = frames.isel(time=slice(120_000, 120_003))
    graph = _graph(part.data)
    reads = sorted(k[1] for k in graph if isinstance(k, tuple) and k[0] == layer.name)
    assert reads == [120_000, 120_001, 120_002]
    plan = resolve(pickle.loads(pickle.dumps(frames[::50_000])))
    assert [k for _, k in plan.frames] == list(df["datakey"][::50_000])
    fs.rm("/mission", recursive=True)


def test_parts_are_kept_as_columns_and_a_first_part_that_failed_gets_the_outputs(files):
    """Parts of one frame; the first is the truncated frame (no output to learn the layout
    from): it still gets every output, NaN, and its reason; the rest equal numpy's."""
    frames = _open(files).isel(time=[BAD, 0, 6, 2])
    result = map_frames(frames, ["mean", "count"], part_size=1, progress=False)
    assert list(result["status"].values) == ["truncated", "ok", "ok", "ok"]
    assert np.isnan(result["mean"].values[0]) and result["count"].values[0] == 0
    np.testing.assert_allclose(
        result["mean"].values[1:], _want(files, frames, "mean")[1:], rtol=1e-6
    )
    assert list(result["datakey"].values) == list(frames["datakey"].values)
    assert result["count"].dtype == np.int64 and result["time"].dtype == frames["time"].dtype
