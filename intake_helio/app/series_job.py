"""``intake-helio reduce`` on a time-series dataset: functions of each file, saved part by part.

:func:`run_series_reduce` opens a CDF/netCDF/HDF5 dataset (``Dataset.to_dataset``,
``on_error="nan"``), maps the user's functions ``f(file_ds)`` over its files in their read
tasks (:mod:`intake_helio.compute.files`) a part at a time, and saves each part as it
completes (``<out>/series_parts/part_NNNNN.json``, written atomically, with the run's
identity in ``run.json``). ``resume=True`` keeps the parts of an interrupted run with the
same identity (another run's parts are refused) and computes only the missing ones. The
result is along ``time`` (each file's start, from the index), with ``datakey``, ``records``
and ``status``, saved as ``reduce.csv``/``reduce.nc``/``reduce.png`` like the frames' reduce.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from ..base.reasons import reason_of
from ..base.settings import current
from ..catalog.registry import open_bucket
from ..compute.files import compute_files, file_plan, files_result, several
from ..compute.progress import Progress
from ..compute.shipping import func_id, ship_by_value
from ..io.storage import mask_url
from .lock import check_wait, hold_out_dir
from .outdir import atomic_write, check_outputs, check_same_run, read_nofollow
from .results import save_outputs
from .runs import compute_on
from .summary import JobSummary, summarize

__all__ = ["run_series_reduce"]

_PARTS = "series_parts"
_RUN = "run.json"
_PART_BYTES = 64 * 2**20  # the most bytes of one saved part read back on --resume


def _check_funcs(funcs: Sequence[str | Callable]) -> list[Callable]:
    names = [f for f in funcs if isinstance(f, str)]
    if names or not funcs:
        raise ArgumentError(
            f"statistics {names or ['mean']} apply to frames; a time-series dataset takes "
            "functions of each file's Dataset: --science MODULE:FUNCTION (f(file_ds) -> "
            "number or dict of numbers)"
        )
    return [ship_by_value(f) for f in funcs]


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        out[k] = {"datetime": str(np.datetime64(v, "ns"))} if isinstance(v, np.datetime64) else v
    return out


def _decode(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: np.datetime64(v["datetime"], "ns") if isinstance(v, dict) else v
        for k, v in values.items()
    }


def _load_parts(where: Path, identity: dict, resume: bool) -> dict[int, tuple[dict, str]]:
    """The results saved by an earlier run (``resume``); else an empty, fresh folder."""
    run = where / _RUN
    if not resume:
        if where.exists():
            shutil.rmtree(where)
        return {}
    if not run.exists():
        return {}
    old = json.loads(read_nofollow(run, 1 << 20))
    check_same_run(where, old, identity)
    done: dict[int, tuple[dict, str]] = {}
    for path in sorted(where.glob("part_*.json")):
        try:
            part = json.loads(read_nofollow(path, _PART_BYTES))
            for row in part["files"]:
                done[int(row["file"])] = (_decode(row["values"]), str(row["status"]))
        except (ValueError, KeyError, TypeError, OSError):
            path.unlink()  # a part cut by a kill: computed again
    return done


def _save_part(where: Path, p: int, results: Mapping[int, tuple[dict, str]]) -> None:
    rows = [{"file": i, "values": _encode(v), "status": s} for i, (v, s) in results.items()]
    text = json.dumps({"files": rows})
    atomic_write(where / f"part_{p:05d}.json", lambda path: path.write_text(text))


def _along_time(result: xr.Dataset) -> xr.Dataset:
    """The result indexed by each file's start (the index's), as the frames' results are."""
    if "file_start" not in result.coords:
        return result
    out = result.rename({"file_start": "time"}).swap_dims({"file": "time"})
    return out.drop_vars([v for v in ("file_stop",) if v in out.coords])


def run_series_reduce(
    endpoint: str,
    dataset: str,
    start: Any,
    stop: Any,
    out: str,
    *,
    funcs: Sequence[str | Callable],
    formats: Sequence[str] = ("csv", "nc"),
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    resume: bool = False,
    part_size: int | None = None,
    progress: bool = True,
    wait_lock: float | None = None,
    variables: Sequence[str] | None = None,
    time_variable: str | None = None,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save functions of each file of a time-series dataset over ``[start, stop)``.

    Parameters
    ----------
    endpoint, dataset : str
        Bucket root and the dataset's id (its ``filetype`` opens as a series).
    start, stop : time-like
        Half-open range.
    out : str
        Output directory.
    funcs : sequence of callable
        Functions ``f(file_ds)`` of each file's records (a Dataset along ``time``),
        returning a number or a dict of numbers; sent to the workers by value.
    formats : sequence of str
        Any of ``"csv"``, ``"nc"``, ``"png"`` (as for the frames' reduce).
    storage_options, cluster_kind, cluster_kwargs, wait_lock
        As for :func:`~intake_helio.app.job.run_reduce_job`.
    resume : bool
        Keep the parts of an interrupted run with the same arguments and functions.
    part_size : int, optional
        Files per saved part (setting ``intake_helio.part-size`` when None).
    progress : bool
        Show a bar of files done.
    variables, time_variable : optional
        As ``variables=`` and ``time=`` of ``Dataset.to_dataset``.

    Returns
    -------
    (xarray.Dataset, JobSummary)
        The result along ``time`` (each file's start) and what the run did.
    """
    shipped = _check_funcs(funcs)
    wait_lock = check_wait(wait_lock)
    part_size = part_size or current().part_size
    func = shipped[0] if len(shipped) == 1 else several(shipped)
    check_outputs(out, [f"reduce.{f}" for f in formats if f in ("csv", "nc", "png")])
    bucket = open_bucket(endpoint, storage_options)
    ds = bucket[dataset].to_dataset(
        start, stop, variables=variables, time=time_variable, on_error="nan",
        storage_options=storage_options,
    )  # fmt: skip
    plan = file_plan(ds)
    identity = {
        "job": "reduce-series",
        "endpoint": mask_url(bucket.endpoint),
        "dataset": dataset,
        "start": str(pd.Timestamp(plan.spec.start)),
        "stop": str(pd.Timestamp(plan.spec.stop)),
        "funcs": [func_id(f) for f in shipped],
        "variables": list(plan.names),
        "time": plan.time,
        "part_size": int(part_size),
        "files": list(plan.spec.datakeys),
    }
    where = Path(out) / _PARTS
    t0 = time.perf_counter()
    with hold_out_dir(out, wait_lock):
        done = _load_parts(where, identity, resume)
        where.mkdir(parents=True, exist_ok=True)
        atomic_write(where / _RUN, lambda p: p.write_text(json.dumps(identity)))
        results = dict(done)
        parts = plan.parts(part_size)
        todo = [(p, f) for p, f in enumerate(parts) if not all(i in done for i in f)]
        computed = 0
        with (
            compute_on(cluster_kind, cluster_kwargs),
            Progress.maybe(progress, len(plan.todo), desc="files") as bar,
        ):
            bar.update(len(plan.todo) - sum(len(f) for _, f in todo))
            for p, files in todo:
                part = compute_files(plan, files, func)
                _save_part(where, p, part)
                results.update(part)
                computed += len(files)
                bar.update(len(files))
        name = getattr(func, "__name__", "value")
        result = _along_time(files_result(ds, plan, results, name))
        result.attrs["source"] = f"intake-helio reduce: {', '.join(identity['funcs'])} of each file"
        written, notes = save_outputs(result, out, formats, stem="reduce")
    status = [str(reason_of(str(s))) for s in result["status"].to_numpy()]  # counted by reason
    summary = summarize(status, time.perf_counter() - t0, computed, written, notes)
    summary.items = "files"
    return result, summary
