"""Per-file science on a time series: a function of each file's Dataset, in its read task.

:func:`map_files` is :func:`~intake_helio.compute.engine.map_frames` for series
(:func:`~intake_helio.open_series`, ``Dataset.to_dataset``): each file of the (selected)
series is read in one task where ``func`` runs on its records, so only the function's
values travel back. Every file ends with its values or a reason in ``status``; the work is
done in parts of ``intake_helio.part-size`` files on the active scheduler, with progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..base.backends import TIME
from ..base.errors import HelioError
from ..base.reasons import Reason
from ..base.settings import current
from ..series.build import SeriesLayer, file_batches, series_specs
from ..series.read import ahead, file_dataset, outcome, skeleton_of
from .progress import Progress

__all__ = [
    "FilePlan",
    "FilesError",
    "compute_files",
    "file_plan",
    "files_result",
    "map_files",
    "several",
]


class FilesError(HelioError, ValueError):
    """``map_files`` was given something it cannot map (not a series, a bad function)."""


def _layer(ds: xr.Dataset) -> SeriesLayer:
    layers = series_specs(ds)
    if len(layers) != 1:
        what = "no" if not layers else f"{len(layers)}"
        raise FilesError(
            f"map_files needs a Dataset opened by ih.open_series or Dataset.to_dataset "
            f"(selected by time or variables at most); this one holds {what} series"
        )
    return layers[0]


def _values(result: Any, name: str) -> dict[str, Any]:
    """A function's result as outputs by name: a number (or 0-d array), or a dict of them."""
    items = result.items() if isinstance(result, Mapping) else [(name, result)]
    out = {}
    for key, value in items:
        if isinstance(value, xr.DataArray):
            value = value.values
        arr = np.asarray(value)
        if arr.ndim != 0 or arr.dtype.kind not in "biufcmM":
            raise FilesError(
                f"{name} returned {type(value).__name__} for {key!r}; expected a number "
                "(or a dict of numbers) per file"
            )
        out[str(key)] = arr.item() if arr.dtype.kind not in "mM" else arr
    return out


def map_file(spec, i, time, skeleton, within, func, name, fetched=None) -> tuple[dict, str]:
    """``func`` on file ``i``'s Dataset, as ``(values, status)``."""
    data, why, _ = outcome(lambda: file_dataset(spec, i, time, skeleton, within, fetched))
    if data is None:
        return {}, why
    try:
        return _values(func(data), name), str(Reason.OK)
    except Exception as exc:
        return {}, f"{Reason.FUNCTION_ERROR}: {name} raised {type(exc).__name__}: {exc}"[:300]


def map_batch(spec, files, time, skeleton, within, func, name) -> list[tuple[dict, str]]:
    """The task of consecutive files (one, or several small ones fetched read-ahead):
    ``(values, status)`` of each, in order."""
    with contextlib.closing(ahead(spec, files)) as fetched:
        return [map_file(spec, i, time, skeleton, within, func, name, got) for i, got in fetched]


@dataclass(frozen=True)
class FilePlan:
    """What mapping a function over a series' files needs, from the (selected) Dataset."""

    spec: Any
    time: str
    skeleton: xr.Dataset  # the variables given to the function, without records
    within: tuple[np.datetime64, np.datetime64] | None
    todo: tuple[int, ...]  # the files read, in order
    rows: tuple[int, ...]  # the files of the result (those read and those bad at opening)
    status: tuple[str, ...]  # every file's status when the series was opened

    @property
    def names(self) -> tuple[str, ...]:
        """The data variables along time given to the function."""
        return tuple(n for n, v in self.skeleton.data_vars.items() if TIME in v.dims)

    def parts(self, part_size: int) -> list[tuple[int, ...]]:
        """The files to read, ``part_size`` at a time."""
        return [self.todo[a : a + part_size] for a in range(0, len(self.todo), part_size)]


def file_plan(ds: xr.Dataset) -> FilePlan:
    """The files of a (selected) series that a function is mapped over.

    Raises
    ------
    FilesError
        ``ds`` is not a series opened by intake-helio, or has no variable along time.
    """
    layer = _layer(ds)
    names = tuple(n for n, v in ds.data_vars.items() if TIME in v.dims)
    if not names:
        raise FilesError("the Dataset has no variable along time to give the function")
    t = ds[TIME].values
    within = (t.min(), t.max()) if t.size else None
    todo = tuple(i for i in layer.files if within is not None and _touches(ds, i, within))
    bad = [
        i
        for i, st in enumerate(layer.status)
        if st != Reason.OK and within is not None and _touches(ds, i, within)
    ]
    rows = tuple(sorted(set(todo) | set(bad)))
    skeleton = skeleton_of(ds[list(names)])
    return FilePlan(layer.spec, layer.time, skeleton, within, todo, rows, tuple(layer.status))


def function_name(func: Callable) -> str:
    """The output name of a function's value (``value`` for a lambda)."""
    name = getattr(func, "__name__", "value")
    return "value" if name == "<lambda>" else name


class Several:
    """Several functions of a file as one (their outputs merged; picklable)."""

    __name__ = "value"

    def __init__(self, funcs: Sequence[Callable]):
        self.funcs = tuple(funcs)

    def __call__(self, data: xr.Dataset) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for func in self.funcs:
            value = func(data)
            if isinstance(value, Mapping):
                out.update(value)
            else:
                out[function_name(func)] = value
        return out


def several(funcs: Sequence[Callable]) -> Several:
    """One function giving the outputs of all ``funcs`` (a dict result adds its keys)."""
    return Several(funcs)


def compute_files(plan: FilePlan, files: tuple[int, ...], func: Callable) -> dict:
    """``{file: (values, status)}`` of ``func`` on ``files``, on the active scheduler."""
    name = function_name(func)
    batches = file_batches(plan.spec, files)
    tasks = [
        dask.delayed(map_batch, pure=False)(
            plan.spec, batch, plan.time, plan.skeleton, plan.within, func, name
        )
        for batch in batches
    ]
    done = [r for results in dask.compute(*tasks) for r in results]
    return dict(zip(files, done, strict=True))


def map_files(
    ds: xr.Dataset,
    func: Callable[[xr.Dataset], Any],
    *,
    part_size: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Apply ``func`` to each file's records of a lazy series, inside its read task.

    Parameters
    ----------
    ds : xarray.Dataset
        A series (:func:`~intake_helio.open_series`, ``Dataset.to_dataset``), possibly
        selected along ``time`` (the files touched, their records inside its range) and
        by variables (``ds[["B_GSE"]]``: only those are given to ``func``).
    func : callable
        ``func(file_ds) -> number or dict of numbers``: the file's records (a Dataset
        along ``time``, loaded; only its variables along time are read from the file,
        its attributes and support data are the series', as in ``ds``). An exception
        gives that file the reason ``"function error: ..."``.
    part_size : int, optional
        Files per part (default ``intake_helio.part-size``).
    progress : bool
        Show a progress bar of files done.

    Returns
    -------
    xarray.Dataset
        Along ``file``: each output, ``status`` (``"ok"`` or the reason), ``datakey``,
        ``file_start``, ``file_stop`` and ``records``. Files that failed when the series
        was opened keep that reason (they are not read again).
    """
    if not callable(func):
        raise FilesError(f"func={func!r}; expected a function of one file's Dataset")
    plan = file_plan(ds)
    results: dict[int, tuple[dict, str]] = {}
    with Progress.maybe(progress, len(plan.todo), desc="files") as bar:
        for files in plan.parts(part_size or current().part_size):
            results.update(compute_files(plan, files, func))
            bar.update(len(files))
    return files_result(ds, plan, results, function_name(func))


def _touches(ds: xr.Dataset, i: int, within) -> bool:
    """Whether file ``i``'s records (as opened) meet the selected range."""
    if "file_start" not in ds.coords or "file_stop" not in ds.coords:
        return True
    lo, hi = ds["file_start"].values[i], ds["file_stop"].values[i]
    return not (hi < within[0] or lo > within[1])


def files_result(
    ds: xr.Dataset, plan: FilePlan, results: Mapping[int, tuple[dict, str]], fname: str
) -> xr.Dataset:
    """The outputs and status of the plan's files (those read, and those bad at opening).

    Parameters
    ----------
    ds : xarray.Dataset
        The series (its ``file`` coordinates).
    plan : FilePlan
        The files.
    results : mapping
        ``{file: (values, status)}`` of the files read.
    fname : str
        The output's name when no file has a value.
    """
    rows = list(plan.rows)
    status0 = plan.status
    records = ds["file_records"].values if "file_records" in ds.coords else None
    keys = [k for vals, _ in results.values() for k in vals] or [fname]
    data: dict[str, np.ndarray] = {k: np.full(len(rows), np.nan) for k in dict.fromkeys(keys)}
    status = np.empty(len(rows), dtype=object)
    for r, i in enumerate(rows):
        vals, why = results.get(i, ({}, status0[i] if status0 else str(Reason.OK)))
        status[r] = why
        for k, v in vals.items():
            if isinstance(v, np.datetime64) and data[k].dtype.kind == "f":
                data[k] = data[k].astype("M8[ns]")
            data[k][r] = v
    out = xr.Dataset(
        {k: ("file", v) for k, v in data.items()},
        coords={"datakey": ("file", ds["datakey"].values[rows])},
    )
    out["status"] = ("file", status)
    for name in ("file_start", "file_stop"):
        if name in ds.coords:
            out.coords[name] = ("file", ds[name].values[rows])
    if records is not None:
        out.coords["records"] = ("file", records[rows])
    out.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, str | int | float)}
    return out
