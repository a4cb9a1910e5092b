"""A lazy ``xarray.Dataset`` of a series' files: opened from their times, read at compute.

Opening (:func:`open_series`) fetches the first readable file and opens it whole (the
template: variables, attributes, support data), and scans every other file concurrently
(``intake_helio.series-scan-concurrency`` at once): the backend decodes its time variable
only, and its layout must match the first file's. Each file's records inside
``[start, stop)`` are counted there, so the Dataset's ``time`` coordinate and chunks are
known before any data is read. Each record-varying variable is a dask array with one
chunk per file, all taken from one graph layer of read tasks (one per file,
:func:`~intake_helio.series.read.read_file`, carried with its :class:`SeriesSpec` in a
:class:`SeriesLayer`).

Every file ends with a status along the ``file`` dimension (``file_status``): ``"ok"``,
or the reason found when opening (never read again), or with ``on_error="nan"`` the
reason its read task met (its records then NaN / NaT / 0).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from ..base.backends import TIME, Kind, Layout, Scan, kinds_of
from ..base.errors import ArgumentError, FileReadError, HelioError, HelioWarning
from ..base.reasons import REFUSED_COLUMN, Reason, refusals
from ..base.settings import Settings, current
from ..base.sizes import known_sizes
from ..base.work import active_client, batch_sizes, threads_of
from ..io.masking import mask_url
from .read import ahead, open_first, outcome, read_file, scan_file
from .spec import SeriesSpec, series_spec

__all__ = ["SeriesError", "SeriesLayer", "file_batches", "open_series", "series_specs"]

#: The key of a read task's result that holds the file's status (not a variable name).
_STATUS = "\x00status"


class SeriesError(HelioError, ValueError):
    """A series cannot be opened as asked (no file, no readable file, a bad argument)."""


class SeriesLayer(MaterializedLayer):
    """The graph layer of a series' read tasks (one per file), carrying its spec."""

    def __init__(
        self,
        mapping: Mapping,
        spec: SeriesSpec,
        files: Sequence[int],
        time: str,
        status: Sequence[str] = (),
        batches: Sequence[tuple[int, ...]] | None = None,
    ):
        super().__init__(mapping)
        self.spec = spec
        self.files = tuple(files)  # the files with records, in chunk order
        self.time = time
        self.status = tuple(status)  # every file's status when the series was opened
        # the files of each task (one chunk each), in order
        self.batches = tuple(batches) if batches is not None else tuple((i,) for i in files)

    def __reduce__(self):
        args = (dict(self.mapping), self.spec, self.files, self.time, self.status, self.batches)
        return (SeriesLayer, args)


def series_specs(obj: Any) -> list[SeriesLayer]:
    """The :class:`SeriesLayer` of every dask variable of a Dataset (or a DataArray)."""
    arrays = obj.variables.values() if isinstance(obj, xr.Dataset) else [obj.variable]
    found: dict[str, SeriesLayer] = {}
    for var in arrays:
        data = var.data
        if isinstance(data, da.Array):
            for name, layer in data.dask.layers.items():
                if isinstance(layer, SeriesLayer):
                    found[name] = layer
    return list(found.values())


# --------------------------------------------------------------------------- opening
def _refused(files: pd.DataFrame) -> list[str]:
    """Per row: its URL policy refusal (``Dataset.files(keep_refused=True)``), or ``""``."""
    if REFUSED_COLUMN not in files:
        return [""] * len(files)
    return refusals(files[REFUSED_COLUMN], ArgumentError)


def _scan_all(
    spec: SeriesSpec, status: list[str], errors: list, on_error: str
) -> tuple[int, xr.Dataset, dict[int, Scan]]:
    """The first readable file (opened whole) and the scans of all others."""
    todo = [i for i, s in enumerate(status) if s == Reason.OK]
    budget = max(spec.settings.max_probes, 1) if on_error == "nan" else 1
    first, template, scans = -1, None, {}
    for i in todo[:budget]:
        value, why, err = outcome(lambda i=i: open_first(spec, i))
        if value is not None:
            first, (scans[i], template) = i, value
            break
        status[i], errors[i] = why, err
        if on_error == "raise":
            raise err
    if template is None:
        bad = next((s for s in status if s != Reason.OK), "no file")
        raise FileReadError(
            mask_url(spec.datakeys[0]),
            Reason.NO_READABLE_FRAME,
            f"none of the first {budget} files could be opened (the first: {bad})",
        )
    like = scans[first]
    rest = [i for i in todo if i > first]
    workers = max(1, min(spec.settings.series_scan_concurrency, len(rest) or 1))
    if rest:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futs = {i: pool.submit(outcome, lambda i=i: scan_file(spec, i, like)) for i in rest}
            try:
                for i in rest:
                    value, why, err = futs[i].result()
                    if value is None:
                        status[i], errors[i] = why, err
                        if on_error == "raise":
                            raise err
                        continue
                    scans[i] = value
            finally:
                for fut in futs.values():
                    fut.cancel()
    return first, template, scans


def _layout_difference(want: Layout, got: Layout) -> str | None:
    """What differs between two files' layouts (None: nothing)."""
    for name, spec in want.items():
        if name not in got:
            return f"no variable {name!r} (the first file has it)"
        if got[name] != spec:
            return f"variable {name!r} is {got[name]}, the first file's {spec}"
    extra = sorted(set(got) - set(want))
    if extra:
        return f"variables the first file lacks: {', '.join(extra[:5])}"
    return None


def _fill(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Records of a file that failed at compute: NaN, NaT, or the dtype's zero."""
    if dtype.kind in "fc":
        return np.full(shape, np.nan, dtype)
    if dtype.kind in "mM":
        return np.full(shape, np.datetime64("NaT"), dtype)
    return np.zeros(shape, dtype)


def read_or_fill(
    spec: SeriesSpec,
    i: int,
    time: str,
    names: tuple[str, ...],
    expected: int,
    kinds: tuple[Kind, ...],
    on_error: str,
    fetched: Callable[[], bytes] | None = None,
) -> dict[str, Any]:
    """File ``i``'s records and ``"ok"``, or (``on_error="nan"``) fills and the reason
    (with ``"raise"``, the file's error is raised)."""
    want = dict(zip(names, kinds, strict=True))
    if on_error == "raise":
        out = read_file(spec, i, time, want, expected, fetched)
        out[_STATUS] = str(Reason.OK)
        return out
    value, why, _ = outcome(lambda: read_file(spec, i, time, want, expected, fetched))
    if value is None:
        value = {
            name: _fill(np.dtype(dt), (expected, *sizes))
            for name, (dt, sizes) in zip(names, kinds, strict=True)
        }
    value[_STATUS] = why
    return value


def read_batch(
    spec: SeriesSpec,
    files: tuple[int, ...],
    time: str,
    names: tuple[str, ...],
    counts: tuple[int, ...],
    kinds: tuple[Kind, ...],
    on_error: str,
) -> dict[str, Any]:
    """The task of consecutive files: their records joined along time, and the status of
    each (a list, in order). The next ``read-ahead`` files are fetched while one is read."""
    with contextlib.closing(ahead(spec, files)) as fetched:  # one file: fetched by its read
        parts = [
            read_or_fill(spec, i, time, names, n, kinds, on_error, got)
            for (i, got), n in zip(fetched, counts, strict=True)
        ]
    out: dict[str, Any] = {
        name: parts[0][name] if len(parts) == 1 else np.concatenate([p[name] for p in parts])
        for name in names
    }
    out[_STATUS] = [p[_STATUS] for p in parts]
    return out


def file_batches(spec: SeriesSpec, chunked: Sequence[int]) -> list[tuple[int, ...]]:
    """The files of each read task: consecutive small files share one (``batch-bytes`` of
    them by the index's median filesize), keeping two tasks or more per thread
    (:func:`~intake_helio.base.work.batch_sizes`); files of ``batch-bytes`` or more, or of
    unknown size, are one task each."""
    settings = spec.settings
    sizes = [spec.filesizes[i] for i in chunked if spec.filesizes[i] > 0]
    if not chunked or not sizes or settings.batch_bytes <= 0:
        return [(i,) for i in chunked]
    typical = float(np.median(sizes))
    most = max(1, int(settings.batch_bytes // max(typical, 1.0)))
    threads = threads_of(active_client())
    out, at = [], 0
    for size in batch_sizes(len(chunked), len(chunked), threads, True, most):
        out.append(tuple(chunked[at : at + size]))
        at += size
    return out


def _check(on_error: str, start: Any, stop: Any) -> None:
    if on_error not in ("raise", "nan"):
        raise ArgumentError(f"on_error={on_error!r}; expected 'raise' or 'nan'")
    if start is None or stop is None:
        raise ArgumentError("open_series needs start and stop (the range kept of the files)")


def open_series(
    files: pd.DataFrame,
    *,
    format: str,
    start: Any,
    stop: Any,
    variables: Sequence[str] | str | None = None,
    time: str | None = None,
    on_error: str = "raise",
    storage_options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> xr.Dataset:
    """A lazy Dataset along ``time`` of the records of ``files`` inside ``[start, stop)``.

    Parameters
    ----------
    files : pandas.DataFrame
        ``datakey`` and optional ``start``, ``stop``, ``filesize`` and ``refused`` columns
        (:meth:`intake_helio.catalog.Dataset.files`), in time order.
    format : str
        The files' format: ``"cdf"``, ``"netcdf3"``, ``"netcdf4"`` or ``"hdf5"``.
    start, stop : str, datetime or numpy.datetime64
        The half-open range of records kept.
    variables : list of str, optional
        The variables to read (and their coordinates); default every variable on the
        chosen time.
    time : str, optional
        The time variable (a CDF ``DEPEND_0`` epoch, a netCDF time coordinate); default
        the first file's (the epoch of most variables; the Dataset's attributes
        ``intake_helio_time`` and ``intake_helio_other_times`` say which, and what else).
    on_error : {"raise", "nan"}
        A file that cannot be read raises (naming it and why), or keeps its reason in
        ``file_status`` (its records dropped when found at opening, NaN at compute).
    storage_options : dict, optional
        Options of the files' filesystems.
    attrs : dict, optional
        Attributes added to the Dataset's.
    settings : Settings, optional
        Default: :func:`~intake_helio.base.settings.current`.

    Returns
    -------
    xarray.Dataset
        Dask-backed variables along ``time`` (one chunk per file), the first file's
        support data, and along ``file``: ``datakey``, ``file_start``, ``file_stop``,
        ``file_records`` and ``file_status``.

    Raises
    ------
    FileReadError
        With ``on_error="raise"``, the first file that cannot be opened.
    ArgumentError
        A variable or time that the first file does not have; a bad argument.
    """
    _check(on_error, start, stop)
    settings = current() if settings is None else settings
    if "datakey" not in files:
        raise SeriesError("the file list has no 'datakey' column (see Dataset.files)")
    if not len(files):
        raise SeriesError(f"no file in [{start}, {stop}): nothing to open")
    sizes = known_sizes(files["filesize"]) if "filesize" in files else np.zeros(len(files), int)
    spec = series_spec(
        format, files["datakey"].astype(str).tolist(), sizes.tolist(), storage_options,
        settings, variables, time, start, stop,
    )  # fmt: skip
    refused = _refused(files)
    status = [w or str(Reason.OK) for w in refused]
    errors: list = [None] * len(status)
    if on_error == "raise" and any(refused):
        i = next(i for i, w in enumerate(refused) if w)
        raise FileReadError(mask_url(spec.datakeys[i]), Reason.URL_NOT_ALLOWED, refused[i])
    first, template, scans = _scan_all(spec, status, errors, on_error)
    chosen = template.attrs.get("intake_helio_time", time)
    want = scans[first].layout
    for i, scan in list(scans.items()):
        diff = _layout_difference(want, scan.layout)
        if diff is not None:
            del scans[i]
            status[i] = f"{Reason.VARIABLES_DIFFER}: {diff}"
            if on_error == "raise":
                raise FileReadError(mask_url(spec.datakeys[i]), Reason.VARIABLES_DIFFER, diff)
    return _dataset(spec, files, template, scans, status, chosen, on_error, attrs)


def _dataset(spec, files, template, scans, status, time, on_error, attrs) -> xr.Dataset:
    """The lazy Dataset of the files' scans (the first file's template for the rest)."""
    n_files = len(spec.datakeys)
    counts = np.zeros(n_files, dtype=np.int64)
    times = []
    for i in range(n_files):
        if i in scans:
            keep = spec.keep(scans[i].times)
            counts[i] = int(keep.sum())
            times.append(scans[i].times[keep])
    tcoord = np.concatenate(times).astype("datetime64[ns]") if times else np.array([], "M8[ns]")
    if tcoord.size > 1 and not np.all(tcoord[1:] >= tcoord[:-1]):
        warnings.warn(
            "the files' times overlap or are out of order: the series' time is not sorted "
            "(sel by time slices may fail); check the index's start/stop",
            HelioWarning,
            stacklevel=3,
        )
    record_kinds = kinds_of(template)
    varying, kinds = tuple(record_kinds), tuple(record_kinds.values())
    chunked = [i for i in range(n_files) if counts[i] > 0]
    batches = file_batches(spec, chunked)
    token = tokenize(spec, tuple(counts), varying, time, on_error, batches)
    read_name = f"helio-series-read-{token}"
    tasks = {}
    for j, batch in enumerate(batches):
        n_of = tuple(int(counts[i]) for i in batch)
        tasks[(read_name, j)] = (read_batch, spec, batch, time, varying, n_of, kinds, on_error)
    reads = SeriesLayer(tasks, spec, chunked, time, status, batches)
    n = len(batches)

    def lazy(key: str, dtype: np.dtype, sizes: tuple[int, ...]) -> da.Array:
        name = f"{key}-{token}"
        zeros = (0,) * len(sizes)
        anchor = _anchor_of(read_name)
        picks = {(name, j, *zeros): (_pick, (read_name, j), key, anchor) for j in range(n)}
        graph = _graph(reads, read_name, name, picks)
        chunks = (tuple(int(counts[list(f)].sum()) for f in batches), *((s,) for s in sizes))
        return da.Array(graph, name, chunks, dtype=dtype)

    data_vars, coords = {}, {}
    for name, (dt, sizes) in zip(varying, kinds, strict=True):
        src = template[name].transpose(TIME, ...)
        arr = lazy(name, np.dtype(dt), sizes) if chunked else np.zeros((0, *sizes), dt)
        var = xr.Variable(src.dims, arr, attrs=dict(src.attrs), encoding=dict(src.encoding))
        (coords if name in template.coords else data_vars)[name] = var
    for name, var in template.variables.items():
        if TIME not in var.dims:  # support data, labels: the first file's
            (coords if name in template.coords else data_vars)[name] = var
    coords[TIME] = xr.Variable(TIME, tcoord, attrs=dict(template[TIME].attrs))
    coords.update(_file_coords(spec, files, counts))
    data_vars["file_status"] = _status_variable(status, batches, reads, read_name, on_error)
    ds = xr.Dataset(data_vars, coords, attrs=dict(template.attrs))
    ds.attrs.update(attrs or {})
    ds.attrs["intake_helio_format"] = spec.format
    return ds


def _file_coords(spec: SeriesSpec, files: pd.DataFrame, counts: np.ndarray) -> dict:
    """The ``file`` coordinates: datakey (masked), the index's start and stop, records."""
    out = {
        "datakey": ("file", np.array([mask_url(k) for k in spec.datakeys], dtype=object)),
        "file_records": ("file", counts),
    }
    for col in ("start", "stop"):
        if col in files:
            out[f"file_{col}"] = ("file", pd.to_datetime(files[col]).to_numpy("datetime64[ns]"))
    return out


def _status_variable(status, batches, reads, read_name, on_error) -> xr.Variable:
    """``file_status``: known at opening, or (``on_error="nan"``) from each read task."""
    attrs = {"long_name": "each file's outcome: ok, or the reason (intake_helio.Reason)"}
    if on_error == "raise" or not batches:
        return xr.Variable("file", np.array(status, dtype=object), attrs=attrs)
    name = f"file-status-{read_name.rsplit('-', 1)[-1]}"
    task_of = {i: (j, k) for j, files in enumerate(batches) for k, i in enumerate(files)}
    picks = {
        (name, i): (
            (_pick_status, (read_name, task_of[i][0]), task_of[i][1], _anchor_of(read_name))
            if i in task_of
            else (_known, status[i])
        )
        for i in range(len(status))
    }
    graph = _graph(reads, read_name, name, picks)
    arr = da.Array(graph, name, ((1,) * len(status),), dtype=object)
    return xr.Variable("file", arr, attrs=attrs)


def _anchor_of(read_name: str) -> str:
    return f"{read_name}-anchor"


def _anchor() -> None:
    """A key every pick depends on besides its read (its value is unused), so that dask's
    low-level fusion never merges a read into one of its picks: the keys of a series then
    have the same task whichever variables a computation asks for (fusing them differently
    in two computations of one client gives a key two specs: dask issue 9888)."""
    return None


def _pick(result: dict[str, Any], name: str, _anchor: None) -> np.ndarray:
    """Variable ``name`` of a read task's result."""
    return result[name]


def _graph(reads: SeriesLayer, read_name: str, name: str, picks: dict) -> HighLevelGraph:
    """The read layer, its anchor and one layer of picks from its results."""
    anchor = _anchor_of(read_name)
    layers = {
        read_name: reads,
        anchor: MaterializedLayer({anchor: (_anchor,)}),
        name: MaterializedLayer(picks),
    }
    return HighLevelGraph(layers, {read_name: set(), anchor: set(), name: {read_name, anchor}})


def _known(status: str) -> np.ndarray:
    """The status found at opening, as a one-element array."""
    return np.array([status], dtype=object)


def _pick_status(result: dict[str, Any], k: int, _anchor: None) -> np.ndarray:
    """The status of the ``k``-th file of one read task, as a one-element array."""
    return np.array([result[_STATUS][k]], dtype=object)
