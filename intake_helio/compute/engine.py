"""The frame engine: any per-frame science, inside each frame's read task.

:func:`map_frames` applies built-in statistics and user functions to every frame of a
lazy ``(time, y, x)`` array. For arrays made by :func:`~intake_helio.open_frames` and
selected in any way (``sel``/``isel``/slices/steps/masks, ``y``/``x`` windows,
``xr.concat``, unpickled elsewhere), each task reads a batch of consecutive frames (one
read per frame, only the touched tiles for windows, the next file fetched while one is
decoded) and computes every function on each frame where it was read. Arrays changed by
arithmetic take the generic path: dask computes each frame, then the functions run on it.
Either way every frame ends with values or a reason in ``status``, and work is done in
parts (for progress, saving and resuming) on the active scheduler: the local one, a
``LocalCluster``, a gateway cluster or any ``distributed.Client``.

The engine knows items and their readers, not formats: what it asks of the reading side
(a reader per task, the built-in statistics' names) is :mod:`intake_helio.frames.reader`;
which items a task reads, and the task itself, are :mod:`intake_helio.compute.batches`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..base.errors import HelioError
from ..base.reasons import Reason
from ..base.settings import current
from ..frames.reader import BUILTINS, is_builtin, long_name
from ..frames.spec import resolve, specs_by_key
from ..io.failures import reason_for
from .assembly import _attrs, _dataset, _joined, _layout, _text, frame_times
from .batches import batch_tasks, most_per_task, single_task
from .calibration import corrected_units, correction_attrs, correction_for, table_for
from .generic import generic_tasks
from .progress import Progress
from .scheduling import active_client, batch_sizes, part_range, threads_of
from .shipping import ship_by_value

__all__ = ["EngineError", "FuncSpec", "frame_funcs", "iter_map_parts", "map_frames"]

#: ``(output name, built-in statistic name or callable)``.
FuncSpec = tuple[str, str | Callable]


class EngineError(HelioError, ValueError):
    """``map_frames`` was given something it cannot compute."""


def frame_funcs(func: Any) -> list[FuncSpec]:
    """Normalise ``func`` (a name, a callable, or a list of those) to named functions.

    Raises
    ------
    EngineError
        For an unknown statistic, a non-callable, or two outputs with the same name.
    """
    items = list(func) if isinstance(func, list | tuple) else [func]
    if not items:
        raise EngineError("func=[]; expected a statistic name, a function or a list of those")
    out: list[FuncSpec] = []
    for item in items:
        if isinstance(item, str):
            if not is_builtin(item):
                raise EngineError(
                    f"func={item!r} is not a built-in statistic; expected one of "
                    f"{list(BUILTINS)}, a percentile p<q> (0 <= q <= 100, e.g. 'p99') or a "
                    "function f(data, header)"
                )
            out.append((item, item))
        elif callable(item):
            name = getattr(item, "__name__", None) or type(item).__name__
            out.append(("func" if name == "<lambda>" else name, ship_by_value(item)))
        else:
            raise EngineError(
                f"func={item!r}; expected a statistic name ({', '.join(BUILTINS)}), a "
                "function f(data, header) or a list of those"
            )
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EngineError(
            f"two outputs named {dup}: give functions distinct names (def ...) or return a "
            "dict with distinct keys"
        )
    return out


def _token(*parts: Any) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def output_attrs(
    func: Any, units: str, given: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Attributes of each output of ``func`` (as :func:`map_frames` takes it): its
    ``long_name`` and ``units``.

    Built-in statistics have the frames' ``units`` (``count`` none); a function declares
    its own with an attribute ``units`` (a string, or for a function returning a dict, a
    dict by output name), e.g. ``f.units = "DN/s"``; ``given`` (``{output: units}``) sets
    or overrides any output's.

    Raises
    ------
    EngineError
        ``given`` is not a dict of strings.
    """
    if given is not None and not (
        isinstance(given, Mapping) and all(isinstance(v, str) for v in given.values())
    ):
        raise EngineError(f"units={given!r}; expected a dict {{output name: units string}}")
    items = list(func) if isinstance(func, list | tuple) else [func]
    out: dict[str, dict[str, Any]] = {}
    for (name, _), item in zip(frame_funcs(func), items, strict=True):
        if isinstance(item, str):
            out[name] = {"long_name": long_name(item)}
            if item != "count":
                out[name]["units"] = units
            continue
        declared = getattr(item, "units", None)
        label = f"output of {getattr(item, '__name__', name)}"
        if isinstance(declared, Mapping):
            for key, value in declared.items():
                out[str(key)] = {"long_name": f"{label} ({key})", "units": str(value)}
        else:
            out[name] = {"long_name": label}
            if isinstance(declared, str):
                out[name]["units"] = declared
    for name, value in (given or {}).items():
        out.setdefault(str(name), {"long_name": str(name)})["units"] = value
    return out


def iter_map_parts(
    frames: xr.DataArray,
    funcs: Sequence[FuncSpec],
    *,
    normalize: bool = False,
    part_size: int | None = None,
    skip: Iterable[int] = (),
    progress: Progress | None = None,
    correction: Any = None,
) -> Iterator[tuple[int, range, list[tuple[dict[str, Any], str]]]]:
    """Compute ``funcs`` on every frame, part by part.

    Yields ``(part_number, frames_range, records)`` as parts complete, where ``records``
    holds one ``(values, status)`` per frame of the part. Parts in ``skip`` are not
    computed. With a distributed client several parts are in flight at once and are
    yielded in completion order. ``correction``: a factor each frame is also divided by,
    from its header (:class:`~intake_helio.calibrate.Degradation`), in its read task.
    """
    settings = current()
    part_size = settings.part_size if part_size is None else part_size
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise EngineError(f"part_size={part_size!r}; expected a positive number of frames")
    if frames.ndim != 3 or frames.dims != ("time", "y", "x"):
        raise EngineError(
            f"frames has dimensions {frames.dims}; expected ('time', 'y', 'x') as made by "
            "ih.open_frames or Dataset.to_dataarray (select frames with slices or lists "
            "along time, not a single time)"
        )
    n = frames.sizes["time"]
    plan = resolve(frames)
    skip = set(skip)
    todo = [p for p in range(math.ceil(n / part_size)) if p not in skip]
    todo_frames = sum(len(part_range(p, part_size, n)) for p in todo)
    client = active_client()
    threads = threads_of(client)
    token = _token(
        getattr(frames.data, "name", id(frames)),
        dask.base.tokenize(funcs, correction),
        normalize,
        n,
    )

    max_batch = most_per_task(plan, settings, part_size)
    by_key: dict = {}  # the generic path's {datakey: spec}, made at its first part

    def units_of(spec) -> str:
        return "DN/s" if normalize else spec.units

    def build(p: int):
        idx = part_range(p, part_size, n)
        if plan is not None:
            sizes = batch_sizes(len(idx), todo_frames, threads, len(todo) == 1, max_batch)
            tasks, spans = batch_tasks(
                plan, idx, funcs, units_of, sizes, f"{token}-{p}", correction
            )
        else:
            if not by_key:  # the array's files, once (not a pass over them per part)
                by_key.update(specs_by_key(frames.data))
            tasks, spans = generic_tasks(
                frames, idx, funcs, normalize, f"{token}-{p}", correction, by_key
            )
        return idx, tasks, spans

    def records_of(idx: range, spans, results) -> list:
        out: list = [None] * len(idx)
        for (a, b), res in zip(spans, results, strict=True):
            out[a - idx.start : b - idx.start] = res
        return out

    bar = progress or Progress(None)
    if client is None:
        for p in todo:
            idx, tasks, spans = build(p)
            with bar.local_callback():
                results = _compute_local(tasks, spans, frames, funcs, normalize)
            yield p, idx, records_of(idx, spans, results)
        return

    from distributed import as_completed

    per_task = max_batch if plan is not None else 1
    in_flight = max(2, math.ceil(4 * threads * per_task / part_size) + 1)
    pending = iter(todo)
    running: dict[int, dict] = {}
    owner: dict[Any, tuple[int, tuple[int, int]]] = {}
    attempts: dict[tuple[int, int], int] = {}  # task-level failures of single frames

    def track(p: int, futures: list, spans: list) -> list:
        for fut, span in zip(futures, spans, strict=True):
            owner[fut] = (p, span)
        return futures

    def submit_next() -> list:
        p = next(pending, None)
        if p is None:
            return []
        idx, tasks, spans = build(p)
        if not tasks:  # an empty part cannot happen (parts have >= 1 frame)
            raise EngineError(f"part {p} has no tasks")
        running[p] = {"idx": idx, "records": [None] * len(idx), "left": len(idx)}
        return track(p, client.compute(tasks), spans)

    first = []
    for _ in range(in_flight):
        first += submit_next()
    ac = as_completed(first, with_results=False)
    try:
        for fut in ac:
            p, (a, b) = owner.pop(fut)
            state = running[p]
            try:
                result = fut.result()
            except Exception as exc:
                tries = attempts.get((a, b), 0)
                if plan is not None and tries < _SINGLE_ATTEMPTS:
                    # a batch that failed as a whole (its worker died): each frame again on its
                    # own, a few times (a frame queued on a worker that another frame kills
                    # fails too), so that only the frame that kills workers is lost
                    singles = [(i, i + 1) for i in range(a, b)]
                    for span in singles:
                        attempts[span] = tries + 1 if b - a == 1 else attempts.get(span, 0)
                    tasks = [
                        single_task(plan, i, funcs, units_of, f"{token}-{p}-{tries}", correction)
                        for i in range(a, b)
                    ]
                    for nxt in track(p, client.compute(tasks), singles):
                        ac.add(nxt)
                    continue
                result = _failed((a, b), exc)
            start = state["idx"].start
            state["records"][a - start : b - start] = result
            state["left"] -= b - a
            bar.update(b - a)
            if state["left"] == 0:
                del running[p]
                for nxt in submit_next():
                    ac.add(nxt)
                yield p, state["idx"], state["records"]
    finally:
        for fut in owner:
            fut.cancel()


#: How often a single frame whose task failed as a whole (its worker died) is tried again.
_SINGLE_ATTEMPTS = 3


def _failed(span: tuple[int, int], exc: BaseException) -> list[tuple[dict, str]]:
    """Records for the frames of a task that failed as a whole (e.g. its worker died)."""
    reason = reason_for(exc)
    if type(exc).__name__ == "KilledWorker":
        reason = Reason.WORKER_DIED
    return [({}, str(reason))] * (span[1] - span[0])


def _compute_local(tasks, spans, frames, funcs, normalize) -> list:
    """Compute a part's tasks with the local scheduler; a failing task fails only itself."""
    try:
        return list(dask.compute(*tasks))
    except Exception:
        pass
    out = []
    for task, span in zip(tasks, spans, strict=True):
        try:
            (res,) = dask.compute(task)
        except Exception as exc:
            res = _failed(span, exc)
        out.append(res)
    return out


def map_frames(
    frames: xr.DataArray | xr.Dataset,
    func: str | Callable | Sequence[str | Callable],
    *,
    normalize: bool = False,
    progress: bool = True,
    part_size: int | None = None,
    on_part: Callable[[int, xr.Dataset], Any] | None = None,
    skip: Iterable[int] = (),
    units: Mapping[str, str] | None = None,
    correct_degradation: bool = False,
    correction_table: Any = None,
) -> xr.Dataset:
    """Apply per-frame science to every frame, in the frames' read tasks.

    Parameters
    ----------
    frames : xarray.DataArray or xarray.Dataset
        Lazy ``(time, y, x)`` frames (:func:`~intake_helio.open_frames`,
        :meth:`~intake_helio.Dataset.to_dataarray`), selected in any way; or several
        channels from :func:`~intake_helio.open_channels` (results then have dimensions
        ``(channel, time)``).
    func : str, callable or list of those
        Built-in statistics (``"mean"``, ``"sum"``, ``"min"``, ``"max"``, ``"std"``
        (population), ``"count"`` (valid pixels); ``"disk_mean"``, ``"disk_sum"`` and
        ``"offdisk_mean"`` of the valid pixels on or off the solar disk, which each frame's
        own header places as sunpy's ``coordinate_is_on_solar_disk`` does; NaN when there
        is none) and/or functions ``f(data, header)``:
        ``data`` is the frame (or its window) as float32 with NaN for BLANK, ``header``
        a read-only mapping of the image HDU's cards. A function returns a number, a
        numpy array of a fixed shape, or a dict of those. All of them are computed
        from one read of each frame.
    normalize : bool
        Divide each frame by its own ``EXPTIME`` (DN/s) before computing.
    progress : bool
        Show a progress bar (frames done, per task) in a terminal or a notebook.
    part_size : int, optional
        Frames per part (setting ``intake_helio.part-size``, default 256).
    on_part : callable, optional
        Called with ``(part_number, part_dataset)`` as each part completes.
    skip : iterable of int
        Part numbers not to compute (saved by an earlier run); the result then holds
        only the parts computed now.
    units : dict, optional
        ``{output name: units}`` for outputs of functions (or to override): see
        :func:`output_attrs`. A function may declare its own (``f.units = "DN/s"``, or a
        dict by output name); built-in statistics have the frames' units (``"DN/s"`` with
        ``normalize``).
    correct_degradation : bool
        Divide each frame by aiapy's degradation factor of its channel (header
        ``WAVELNTH``) and time (``DATE-OBS``, as aiapy's ``correct_degradation`` takes it
        from a sunpy Map), in the read: every output linear in the pixels is corrected,
        and functions receive corrected data. Needs aiapy (the ``aia`` extra); a frame
        the table has no factor for gets the reason ``"no degradation correction: ..."``.
        See :func:`~intake_helio.irradiance`.
    correction_table : str, os.PathLike, astropy.table.Table or None
        The correction table (a ``aia_V*_response_table.txt`` file, or a table as
        ``aiapy.calibrate.util.get_correction_table`` returns it); None: aiapy's default
        source (JSOC, over the network). Recorded in the results' ``correction_table``.

    Returns
    -------
    xarray.Dataset
        Along ``time``: one variable per output (named after the statistic, the
        function's ``__name__`` or its dict keys; arrays add dimensions after ``time``;
        attributes ``long_name`` and ``units`` where known), ``status`` (``"ok"`` or the
        reason: see :class:`~intake_helio.Reason`), ``datakey`` and ``frame_time`` (each
        frame's own time: with channels each channel's, ``time`` the first's). An exception
        raised by a function on one frame becomes that frame's status; it never fails the
        job.
    """
    funcs = frame_funcs(func)
    output_attrs(func, "", units)  # checked before anything is computed
    table = table_for(correct_degradation, correction_table)

    def run(arr: xr.DataArray) -> xr.Dataset:
        correction = correction_for(arr, table)
        unit = corrected_units(_frame_units(arr, normalize), correction)
        meta = output_attrs(func, unit, units)
        return run_map(
            arr,
            funcs,
            normalize,
            progress,
            part_size,
            on_part,
            skip,
            var_attrs=meta,
            correction=correction,
        )

    if isinstance(frames, xr.Dataset):
        return by_channel(frames, run)
    return run(frames)


def _frame_units(frames: xr.DataArray, normalize: bool) -> str:
    """The units of ``frames`` as computed on: ``"DN/s"`` with ``normalize``."""
    return "DN/s" if normalize else str(frames.attrs.get("units", "DN"))


def channel_arrays(frames: xr.Dataset) -> dict[str, xr.DataArray]:
    """The ``(time, y, x)`` variables of a channels Dataset, with their own coordinates.

    :func:`~intake_helio.catalog.channels.open_channels` prefixes each channel's coordinates
    with its name (``aia_0171_datakey``); here they get their plain names back.
    """
    out = {}
    for name, var in frames.data_vars.items():
        if var.dims != ("time", "y", "x"):
            continue
        prefix = f"{name}_"
        keep = {c: c[len(prefix) :] for c in var.coords if c.startswith(prefix)}
        drop = [c for c in var.coords if c not in keep and c not in ("time", "y", "x")]
        out[str(name)] = var.drop_vars(drop).rename(keep)
    if not out:
        raise EngineError(
            "this Dataset has no (time, y, x) frames variables; make one with ih.open_channels"
        )
    return out


#: The attributes of a channel's result its channels' stacked result keeps (one for all).
CHANNEL_ATTRS = ("units", "calibration", "correction_table")


def by_channel(frames: xr.Dataset, compute: Callable[[xr.DataArray], xr.Dataset]) -> xr.Dataset:
    """``compute`` on each channel of ``frames``, stacked along a new ``channel`` dimension.

    Per-channel variables (``datakey``) keep their ``(channel, time)`` shape; ``status`` is
    ``(channel, time)`` too.
    """
    results = []
    names = []
    attrs: dict[str, Any] = {}
    for name, arr in channel_arrays(frames).items():
        res = compute(arr)
        res = res.assign_coords(time=frames["time"].values[: res.sizes["time"]])
        attrs = attrs if results else dict(res.attrs)
        results.append(res.drop_attrs(deep=False))  # variables keep theirs (units)
        names.append(name)
    out = xr.concat(results, dim="channel", data_vars="all", coords="minimal", join="override")
    out = out.assign_coords(channel=("channel", names))
    keep = {k: attrs[k] for k in (*CHANNEL_ATTRS, "time_axis") if k in attrs}
    out.attrs = {"channels": names, **keep}
    return out


def run_map(
    frames: xr.DataArray,
    funcs: Sequence[FuncSpec],
    normalize: bool,
    progress: bool,
    part_size: int | None,
    on_part: Callable[[int, xr.Dataset], Any] | None,
    skip: Iterable[int],
    desc: str = "map_frames",
    var_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    correction: Any = None,
    keep: bool = True,
) -> xr.Dataset | None:
    """:func:`map_frames` with normalised ``funcs``, the progress bar's label, the
    outputs' attributes and the degradation ``correction`` (None: none).

    ``keep=False``: each part goes to ``on_part`` only and nothing is kept or returned
    (None): a job that saves its parts holds no part of the result in memory.
    """
    if frames.attrs.get("units") == "DN/s":
        normalize = False  # already divided by EXPTIME in the read: never twice
    units = corrected_units(_frame_units(frames, normalize), correction)
    n = frames.sizes.get("time", 0)
    skip = set(skip)
    times = frames["time"].to_numpy() if "time" in frames.coords else np.arange(n)
    keys = (  # the coordinate's own str objects (not a fixed-width copy: ~400 B a frame)
        _text(frames["datakey"].to_numpy())
        if "datakey" in frames.coords
        else np.full(n, "", dtype=object)
    )
    total = n - sum(
        len(part_range(p, part_size or current().part_size, n))
        for p in skip
        if p * (part_size or current().part_size) < n
    )
    attrs = {**_attrs(frames, units), **correction_attrs(correction)}
    own = frame_times(frames) if "time" in frames.coords else times
    order = [name for name, _ in funcs]
    t0 = time.perf_counter()

    def part_dataset(idx: range, records: list, layout: Mapping) -> xr.Dataset:
        sl = slice(idx.start, idx.stop)
        return _dataset(times[sl], keys[sl], records, layout, order, attrs, own[sl], var_attrs)

    # each part becomes its columns as it completes: no Python record per frame is kept
    # (a part whose frames all failed keeps its records until the outputs' layout is known)
    parts: list[tuple[range, xr.Dataset, list | None]] = []
    layout: dict[str, tuple[int, ...]] = {}
    with Progress.maybe(progress, total, desc) as bar:
        for p, idx, records in iter_map_parts(
            frames,
            funcs,
            normalize=normalize,
            part_size=part_size,
            skip=skip,
            progress=bar,
            correction=correction,
        ):
            layout = layout or _layout(records)
            part = part_dataset(idx, records, layout)
            if keep:
                parts.append((idx, part, None if layout else records))
            if on_part is not None:
                on_part(p, part)
    if not keep:
        return None
    parts.sort(key=lambda c: c[0].start)
    done = [
        part_dataset(idx, records, layout) if records is not None and layout else part
        for idx, part, records in parts
    ]
    if done:
        ds = _joined(done)
    else:
        empty = np.arange(0)
        ds = _dataset(times[empty], keys[empty], [], layout, order, attrs, own[empty], var_attrs)
    ds.attrs["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
    return ds
