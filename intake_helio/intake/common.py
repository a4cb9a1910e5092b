"""Pieces shared by the intake drivers: errors, argument checks, redacted output, lazy entries.

Nothing here knows about a particular driver. The intake v1 catalogs (:mod:`.catalogs`)
and frames source (:mod:`.source`) and the intake 2 readers (:mod:`.v2`) build on it; the
CloudCatalog logic itself lives in :mod:`intake_helio.catalog.registry` and
:mod:`intake_helio.frames.build`.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from intake.source.base import NoEntry

from ..base.errors import HelioError
from ..base.options import OptionError
from ..base.settings import current
from ..catalog.registry import Dataset, Endpoint
from ..frames.options import frame_options
from ..io.storage import redact

__all__ = [
    "REDACTED",
    "DriverArgumentError",
    "DriverArgumentTypeError",
    "LazyEntries",
    "PartitionIndexError",
    "SafeOutputMixin",
    "check_dataset_id",
    "check_frame_options",
    "check_series_options",
    "check_storage_options",
    "dataset_metadata",
    "default_window",
    "drop_redacted",
    "entry_names",
    "fill_range",
    "plain",
    "safe",
]

#: What :func:`intake_helio.io.storage.redact` puts in place of a credential.
REDACTED = "***"


# --------------------------------------------------------------------------- errors
class DriverArgumentError(HelioError, ValueError):
    """An argument of an intake driver or catalog entry has an unusable value."""


class DriverArgumentTypeError(HelioError, TypeError):
    """An argument of an intake driver has the wrong type."""


class PartitionIndexError(HelioError, IndexError):
    """A partition number is out of range (a frames source has one partition)."""


# --------------------------------------------------------------------------- arguments
def check_storage_options(storage_options: Any) -> dict[str, Any]:
    """Validate ``storage_options`` and return a plain dict copy.

    Parameters
    ----------
    storage_options : dict or None
        fsspec options, flat or keyed by protocol.

    Returns
    -------
    dict
        A copy (``{}`` for ``None``).

    Raises
    ------
    DriverArgumentTypeError
        ``storage_options`` is not a mapping.
    DriverArgumentError
        An ``endpoint_url`` (flat or in a per-protocol dict) is empty or not a string,
        typically an unset environment variable in a catalog template.
    """
    if storage_options is None:
        return {}
    if not isinstance(storage_options, Mapping):
        raise DriverArgumentTypeError(
            f"storage_options has type {type(storage_options).__name__}; expected a dict such "
            "as {'anon': True} or {'endpoint_url': ..., 'key': ..., 'secret': ...}"
        )
    nested = [v for v in storage_options.values() if isinstance(v, Mapping)]
    for scope in [storage_options, *nested]:
        url = scope.get("endpoint_url", None)
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise DriverArgumentError(
                f"storage_options endpoint_url={url!r} is empty; set it to the S3 server's URL "
                "(if it comes from a catalog template such as {{ env('NAME') }}, that "
                "environment variable is not set), or leave it out to use AWS"
            )
    return dict(storage_options)


def drop_redacted(storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """``storage_options`` without the entries that hold the redaction marker ``'***'``.

    A catalog saved with redacted credentials reads back ``{"key": "***", ...}``: those
    entries are left out, so that the credentials come from the usual places (environment
    variables, AWS profiles, instance roles) instead of being sent as ``'***'``.

    Parameters
    ----------
    storage_options : dict
        Flat or keyed by protocol; nested dicts are cleaned too.

    Returns
    -------
    dict
        A copy.
    """
    out: dict[str, Any] = {}
    for k, v in storage_options.items():
        if isinstance(v, Mapping):
            out[k] = drop_redacted(v)
        elif not (isinstance(v, str) and v == REDACTED):
            out[k] = v
    return out


def check_dataset_id(dataset: Any) -> str:
    """Return ``dataset`` if it is a non-empty string, else raise :class:`DriverArgumentError`."""
    if not isinstance(dataset, str) or not dataset:
        raise DriverArgumentError(f"dataset={dataset!r}; expected a dataset id such as 'aia_0094'")
    return dataset


def check_frame_options(
    hdu: int | str = "auto",
    cutout: Mapping[str, Any] | None = None,
    header_keys: Sequence[str] | str = (),
    units: str = "DN",
    on_error: str = "raise",
    chunks: Mapping[str, int] | None = None,
    quality: str | None = None,
) -> dict[str, Any]:
    """Check the options that open a dataset's frames and return them normalised.

    Parameters
    ----------
    hdu, cutout, header_keys, units, on_error, chunks, quality
        As in :func:`intake_helio.frames.build.open_frames`; a single header key may be
        given as a string.

    Returns
    -------
    dict
        ``hdu``, ``cutout`` (a dict, SkyCoord corners or None; ``Tx``/``Ty`` bounds in
        arcsec as floats), ``header_keys`` (a tuple), ``units``,
        ``on_error``, ``chunks`` (a dict or None) and ``quality`` (None or ``"good"``).

    Raises
    ------
    OptionError
        ``units``, ``on_error`` or ``quality`` is not one of the accepted choices.
    FramesError
        A malformed ``cutout`` or ``chunks`` (read by
        :func:`~intake_helio.frames.options.frame_options`, as every way in does).
    """
    options = frame_options(hdu, cutout, header_keys, units, on_error, chunks, quality)
    return options.arguments()


def check_series_options(
    variables: Sequence[str] | str | None = None,
    time: str | None = None,
    on_error: str = "raise",
    filetype: str | None = None,
) -> dict[str, Any]:
    """Check the options that open a time-series dataset and return them normalised.

    Returns
    -------
    dict
        ``variables`` (a list or None), ``time``, ``on_error`` and ``filetype``.

    Raises
    ------
    OptionError
        ``on_error`` is not ``"raise"`` or ``"nan"``, ``time`` or ``filetype`` not a
        string, ``variables`` not a list of names.
    """
    if on_error not in ("raise", "nan"):
        raise OptionError(f"on_error={on_error!r}; expected 'raise' or 'nan'")
    if isinstance(variables, str):
        variables = [variables]
    if variables is not None and (
        isinstance(variables, Mapping)
        or not all(isinstance(v, str) and v for v in variables)
        or not list(variables)
    ):
        raise OptionError(f"variables={variables!r}; expected a list of variable names")
    for name, value in (("time", time), ("filetype", filetype)):
        if value is not None and (not isinstance(value, str) or not value):
            raise OptionError(f"{name}={value!r}; expected a name (a string) or None")
    return {
        "variables": None if variables is None else list(variables),
        "time": time,
        "on_error": on_error,
        "filetype": filetype,
    }


def default_window(
    dataset: Dataset, window: pd.Timedelta | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The default ``[start, stop)`` of a dataset: its last ``window``, clipped to its start.

    Parameters
    ----------
    dataset : Dataset
    window : pandas.Timedelta, optional
        Defaults to the ``intake_helio.default-window`` setting (``dask.config``; one day
        unless changed), read now.

    Returns
    -------
    (pandas.Timestamp, pandas.Timestamp)
        ``(max(dataset.start, dataset.stop - window), dataset.stop)``; a dataset whose
        ``stop`` is not after its ``start`` gets ``[start, start + window)``.
    """
    if window is None:
        window = current().default_window
    stop = dataset.stop
    if stop <= dataset.start:
        stop = dataset.start + window
    return max(dataset.start, stop - window), stop


def fill_range(
    dataset: Dataset,
    start: pd.Timestamp | None,
    stop: pd.Timestamp | None,
    window: pd.Timedelta | None = None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, stop)`` with missing ends taken from the dataset's default window.

    Parameters
    ----------
    dataset : Dataset
    start, stop : pandas.Timestamp or None
        Parsed ends (see :func:`intake_helio.base.times.parse_range`).
    window : pandas.Timedelta, optional
        Defaults to the ``intake_helio.default-window`` setting, read now.

    Returns
    -------
    (pandas.Timestamp, pandas.Timestamp)
        Both ends given: unchanged. Otherwise the missing ends of :func:`default_window`;
        a single given end outside that window gets the other end ``window`` away
        (``start`` clipped to the dataset's start).
    """
    if start is not None and stop is not None:
        return start, stop
    if window is None:
        window = current().default_window
    t0, t1 = default_window(dataset, window)
    new_start = start if start is not None else t0
    new_stop = stop if stop is not None else t1
    if new_start >= new_stop:  # only one end given and it falls outside the default window
        if start is None:
            new_start = max(dataset.start, new_stop - window)
        else:
            new_stop = new_start + window
    return new_start, new_stop


def dataset_metadata(ds: Dataset) -> dict[str, Any]:
    """Metadata of a dataset's catalog entry: its catalog record plus its extra keys."""
    meta = {
        "id": ds.id,
        "title": ds.title,
        "start": ds.start.isoformat(),
        "stop": ds.stop.isoformat(),
        "index": ds.index,
        "indextype": ds.indextype,
        "filetype": ds.filetype,
        "multiyear": ds.multiyear,
        "endpoint": ds.endpoint,
    }
    for k, v in ds.metadata.items():
        meta.setdefault(k, v)
    return meta


def entry_names(endpoints: Sequence[Endpoint]) -> list[str]:
    """Bucket names, disambiguated with the region (then the endpoint) when they repeat."""
    counts: dict[str, int] = {}
    for e in endpoints:
        counts[e.name] = counts.get(e.name, 0) + 1
    names = [e.name if counts[e.name] == 1 else f"{e.name} ({e.region})" for e in endpoints]
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return [
        n if seen[n] == 1 else f"{e.name} ({e.endpoint})"
        for n, e in zip(names, endpoints, strict=True)
    ]


# --------------------------------------------------------------------------- output
def _plain(value: Any) -> Any:
    """Turn a value into YAML-safe builtins (datetimes stay YAML timestamps)."""
    if isinstance(value, pd.Timestamp):
        return value.floor("us").to_pydatetime() if value is not pd.NaT else None
    if isinstance(value, np.datetime64):
        return _plain(pd.Timestamp(value))
    if isinstance(value, _dt.datetime | _dt.date):
        return value
    if isinstance(value, slice):
        if value.step in (None, 1):
            return [value.start, value.stop]
        return [value.start, value.stop, value.step]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def plain(value: Any) -> Any:
    """``value`` turned into YAML-safe builtins (slices and tuples become lists, times
    ``datetime``, unknown objects ``str``); nothing is redacted."""
    return _plain(value)


def safe(value: Any) -> Any:
    """``value`` with credentials replaced by ``'***'`` and turned into YAML-safe builtins."""
    return _plain(redact(value))


class SafeOutputMixin:
    """Redacted ``yaml()``, ``repr`` and ``describe()`` for intake sources and catalogs.

    Mixed in before :class:`intake.source.base.DataSource` (or ``Catalog``): every
    output passes through :func:`intake_helio.io.storage.redact`, so storage options
    show ``'***'`` for keys, secrets and tokens while the object itself keeps them.
    """

    def _yaml(self) -> dict[str, Any]:
        data = super()._yaml()
        for spec in data["sources"].values():
            spec["args"] = safe(spec.get("args") or {})
            spec["metadata"] = safe(spec.get("metadata") or {})
        return data

    def yaml(self) -> str:
        """YAML for an intake catalog that re-creates this object (credentials as ``'***'``)."""
        import yaml

        return yaml.dump(self._yaml(), default_flow_style=False, allow_unicode=True)

    def describe(self) -> dict[str, Any]:
        """Description from the catalog entry (or, for a directly opened object, its
        arguments), with credentials replaced by ``'***'``."""
        try:
            return redact(self.entry.describe())
        except NoEntry:
            spec = next(iter(self._yaml()["sources"].values()))
            return {
                "name": self.name,
                "container": self.container,
                "driver": type(self).name,
                "description": self.description or spec.get("description") or "",
                "user_parameters": [],
                "metadata": spec["metadata"],
                "args": spec["args"],
            }


# --------------------------------------------------------------------------- entries
class LazyEntries(MutableMapping):
    """The entries of a catalog, built by ``load()`` on first access (thread-safe).

    Parameters
    ----------
    load : callable
        Returns the entries as a dict; called at most once.
    """

    def __init__(self, load: Callable[[], dict[str, Any]]):
        self._load = load
        self._data: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the entries have been read."""
        return self._data is not None

    def _entries(self) -> dict[str, Any]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._entries()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._entries()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __contains__(self, key: object) -> bool:
        return key in self._entries()

    def __repr__(self) -> str:
        return f"<lazy entries: {'loaded' if self.loaded else 'not read yet'}>"
