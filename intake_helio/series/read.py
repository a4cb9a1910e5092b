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

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..base.backends import TIME, Kind, Scan
from ..base.errors import ArgumentError, FileReadError, picklable_cause
from ..base.reasons import Reason
from ..base.sizes import file_limit, known_size
from ..base.text import safe_text
from ..io.failures import reason_for
from ..io.masking import mask_url
from ..io.retry import retry_io
from ..io.transport import Deadline, FileSystems, cat_bounded
from .spec import SeriesSpec

__all__ = ["fetch", "file_dataset", "open_first", "outcome", "read_file", "scan_file"]

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
    """The first file of a series, opened whole (the template: variables, attributes,
    coordinates), and its scan on the time its Dataset chose."""
    data = fetch(spec, i)
    backend = spec.backend
    ds = backend.open(data, **_backend_args(spec, i, None))
    return backend.scan(data, **_backend_args(spec, i, ds.attrs.get("intake_helio_time"))), ds


def scan_file(spec: SeriesSpec, i: int, time: str | None) -> Scan:
    """A later file's times and layout, on the first file's ``time``.

    A variable asked for that this file lacks is the file's fault (``VARIABLES_DIFFER``):
    the first file had it.
    """
    data = fetch(spec, i)
    try:
        return spec.backend.scan(data, **_backend_args(spec, i, time))
    except ArgumentError as exc:
        raise FileReadError(
            mask_url(spec.datakeys[i]), Reason.VARIABLES_DIFFER, str(exc)[:300]
        ) from exc


def _reopen(spec: SeriesSpec, i: int, time: str, names: tuple[str, ...]) -> xr.Dataset:
    """File ``i`` opened at compute, on the series' time; it must still have ``names``."""
    ds = spec.backend.open(fetch(spec, i), **_backend_args(spec, i, time))
    missing = [v for v in names if v not in ds.variables]
    if missing:
        raise FileReadError(
            mask_url(spec.datakeys[i]),
            Reason.VARIABLES_DIFFER,
            f"no variable {missing[0]!r} now (it had when the series was opened)",
        )
    return ds


def read_file(
    spec: SeriesSpec,
    i: int,
    time: str,
    names: Mapping[str, Kind],
    expected: int,
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
    expected : int
        The records of ``[start, stop)`` the file had when the series was opened.
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
    if n != expected:
        raise FileReadError(
            args["datakey"],
            Reason.SHAPE_MISMATCH,
            f"{n} records in range, {expected} when the series was opened: the file "
            "changed; open the series again",
        )
    return out


def file_dataset(
    spec: SeriesSpec,
    i: int,
    time: str,
    names: tuple[str, ...],
    within: tuple[np.datetime64, np.datetime64] | None = None,
) -> xr.Dataset:
    """File ``i``'s Dataset: its records in ``[start, stop)`` (and in the closed range
    ``within``), the variables ``names`` and their coordinates (``map_files``' input)."""
    ds = _reopen(spec, i, time, names)
    t = ds[TIME].values
    keep = spec.keep(t)
    if within is not None:
        keep &= (t >= within[0]) & (t <= within[1])
    return ds[list(names)].isel({TIME: np.flatnonzero(keep)})


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
