"""One file of a series: its bytes through the one door, then its format's backend.

:func:`fetch` reads a file whole with the frames' bounds (``filesize`` plus
``filesize-slack``, never past ``max-file-bytes``; every request under its deadline;
transient errors retried). :func:`open_first` and :func:`scan_file` give what opening
needs (the template, each file's times and layout),
:func:`read_file` the records of ``[start, stop)`` as numpy arrays, time first: the task
of one file. Both raise for a bad file; :func:`outcome` turns any error into the file's
reason (the one table, :func:`~intake_helio.io.failures.reason_for`).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..base.backends import TIME, Kind, Scan, kinds_of
from ..base.errors import ArgumentError, FileReadError, picklable_cause
from ..base.reasons import Reason
from ..base.sizes import file_limit, known_size
from ..base.text import safe_text
from ..io.failures import reason_for
from ..io.masking import mask_url
from ..io.retry import retry_io
from ..io.transport import Deadline, FileSystems, cat_bounded
from .spec import SeriesSpec

__all__ = [
    "ahead",
    "fetch",
    "file_dataset",
    "open_first",
    "outcome",
    "read_file",
    "scan_file",
    "skeleton_of",
]

#: ``FileSystems(storage_options)``-like: ``url -> (fs, path)``.
FsOf = Callable[[str], tuple[Any, str]]


def fetch(spec: SeriesSpec, i: int, fs_of: FsOf | None = None) -> bytes:
    """The bytes of file ``i`` of ``spec``, bounded.

    Raises
    ------
    FileReadError
        ``FILE_TOO_LARGE`` past ``max-file-bytes``, ``READ_ERROR`` past the index's size
        plus slack, ``EMPTY_FILE`` for no bytes; I/O errors propagate (after retries).
    """
    key = spec.datakeys[i]
    settings = spec.settings
    fs, path = (fs_of or FileSystems(spec.storage_options))(key)
    limit = file_limit(settings, spec.filesizes[i])
    deadline = Deadline.from_settings(settings.catalog)
    body = retry_io(
        cat_bounded,
        fs,
        path,
        limit=limit,
        deadline=deadline,
        attempts=settings.retry_attempts,
        base_delay=settings.retry_base_delay,
    )
    if body.more:
        if known_size(spec.filesizes[i]) is None or limit >= settings.max_file_bytes:
            raise FileReadError(
                mask_url(key),
                Reason.FILE_TOO_LARGE,
                f"more than intake_helio.max-file-bytes={settings.max_file_bytes} bytes; "
                "raise it (dask.config.set({'intake_helio.max-file-bytes': N})) to read it",
            )
        raise FileReadError(
            mask_url(key),
            Reason.READ_ERROR,
            f"more than the index's filesize {spec.filesizes[i]} plus "
            f"intake_helio.filesize-slack={settings.filesize_slack} bytes; the index is out "
            "of date: re-index, or raise the slack",
        )
    if not body.data:
        raise FileReadError(mask_url(key), Reason.EMPTY_FILE, "the object has no bytes")
    return bytes(body.data)


def _backend_args(spec: SeriesSpec, i: int, time: str | None) -> dict[str, Any]:
    return {
        "datakey": mask_url(spec.datakeys[i]),
        "variables": spec.variables,
        "time": time if time is not None else spec.time,
        "max_bytes": spec.settings.max_series_bytes,
    }


def open_first(spec: SeriesSpec, i: int) -> tuple[Scan, xr.Dataset]:
    """The first file of a series: its scan, and the template of the series (its
    variables, attributes and support data: the backend's ``template``)."""
    return spec.backend.template(fetch(spec, i), **_backend_args(spec, i, None))


def scan_file(spec: SeriesSpec, i: int, like: Scan) -> Scan:
    """A later file's times and layout, on the first file's time (``like``, its scan).

    A variable asked for that this file lacks is the file's fault (``VARIABLES_DIFFER``):
    the first file had it.
    """
    data = fetch(spec, i)
    try:
        return spec.backend.scan(data, like=like, **_backend_args(spec, i, like.time))
    except ArgumentError as exc:
        raise FileReadError(
            mask_url(spec.datakeys[i]), Reason.VARIABLES_DIFFER, str(exc)[:300]
        ) from exc


def read_file(
    spec: SeriesSpec,
    i: int,
    time: str,
    names: Mapping[str, Kind],
    expected: int | None,
    fetched: Callable[[], bytes] | None = None,
) -> dict[str, np.ndarray]:
    """The records of file ``i`` inside ``[start, stop)``: each variable, time first.

    Only ``names`` are decoded, and (CDF, netCDF) only their records in the range
    (:meth:`~intake_helio.base.backends.SeriesBackend.read`).

    Parameters
    ----------
    spec : SeriesSpec
        The series.
    i : int
        The file.
    time : str
        The time variable chosen on the first file (every file uses the same).
    names : mapping of str to Kind
        The record-varying variables of the series, with their dtypes and sizes.
    expected : int or None
        The records of ``[start, stop)`` the file had when the series was opened (None:
        not checked).
    fetched : callable, optional
        Gives the file's bytes (fetched ahead by the task); default :func:`fetch`.

    Raises
    ------
    FileReadError
        The file's records changed since the series was opened (``SHAPE_MISMATCH``), or
        lack a variable (``VARIABLES_DIFFER``); the backend's and :func:`fetch`'s errors.
    """
    args = _backend_args(spec, i, time)
    data = fetch(spec, i) if fetched is None else fetched()
    out = spec.backend.read(data, names=names, start=spec.start, stop=spec.stop, **args)
    n = len(out[TIME])
    if expected is not None and n != expected:
        raise FileReadError(
            args["datakey"],
            Reason.SHAPE_MISMATCH,
            f"{n} records in range, {expected} when the series was opened: the file "
            "changed; open the series again",
        )
    return out


def skeleton_of(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (a series, or a selection of one) without records: its variables along
    ``time`` empty numpy arrays, its support data and attributes as they are; what a
    task needs to give one file's records as a Dataset (:func:`file_dataset`)."""
    out = {}
    for name, var in ds.variables.items():
        if TIME in var.dims:
            var = var.transpose(TIME, ...)
            empty = np.zeros((0, *var.shape[1:]), var.dtype)
            out[name] = xr.Variable(var.dims, empty, attrs=dict(var.attrs))
        elif "file" not in var.dims:
            out[name] = var
    data = {k: v for k, v in out.items() if k in ds.data_vars}
    coords = {k: v for k, v in out.items() if k not in data}
    return xr.Dataset(data, coords=coords, attrs=dict(ds.attrs))


def file_dataset(
    spec: SeriesSpec,
    i: int,
    time: str,
    skeleton: xr.Dataset,
    within: tuple[np.datetime64, np.datetime64] | None = None,
    fetched: Callable[[], bytes] | None = None,
) -> xr.Dataset:
    """File ``i``'s records in ``[start, stop)`` (and in the closed range ``within``) on
    the series' ``skeleton`` (:func:`skeleton_of`): ``map_files``' input. Only the
    skeleton's variables along time are decoded (:func:`read_file`)."""
    got = read_file(spec, i, time, kinds_of(skeleton), None, fetched)
    t = got[TIME]
    keep = slice(None) if within is None else (t >= within[0]) & (t <= within[1])
    variables = {
        n: xr.Variable(v.dims, got[n][keep] if n in got else v.data, attrs=dict(v.attrs))
        for n, v in skeleton.variables.items()
    }
    data = {k: variables[k] for k in skeleton.data_vars}
    coords = {k: v for k, v in variables.items() if k not in data}
    return xr.Dataset(data, coords=coords, attrs=dict(skeleton.attrs))


def ahead(
    spec: SeriesSpec, files: Sequence[int]
) -> Iterator[tuple[int, Callable[[], bytes] | None]]:
    """Each of ``files`` with what gives its bytes, the next ``read-ahead`` of them fetched
    meanwhile (None for a file alone: :func:`read_file` fetches it). Close the generator
    (``contextlib.closing``) to cancel the fetches not yet used."""
    if len(files) == 1:
        yield files[0], None
        return
    n = max(1, spec.settings.read_ahead)
    with concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="helio-series") as pool:
        futures = {k: pool.submit(fetch, spec, files[k]) for k in range(min(n, len(files)))}
        try:
            for k, i in enumerate(files):
                if k + n < len(files):
                    futures[k + n] = pool.submit(fetch, spec, files[k + n])
                yield i, futures.pop(k).result
        finally:
            for fut in futures.values():
                fut.cancel()


def outcome(fn: Callable[[], Any]) -> tuple[Any, str, BaseException | None]:
    """``(value, "ok", None)`` of ``fn()``, or ``(None, reason, error)`` when it raised.

    A user error (:class:`~intake_helio.base.errors.ArgumentError`, e.g. an unknown
    variable) is raised, not made a file's reason.
    """
    try:
        return fn(), str(Reason.OK), None
    except ArgumentError:
        raise
    except Exception as exc:
        reason = reason_for(exc, decoding=True)
        detail = getattr(exc, "detail", "") or ""
        own = detail and reason == getattr(exc, "reason", "")
        status = f"{reason}: {safe_text(detail, 200)}" if own else reason
        return None, str(status), picklable_cause(exc)
