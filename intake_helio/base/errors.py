"""Exceptions and warnings raised by intake-helio.

Every error subclasses :class:`HelioError` and a built-in exception so that ordinary
``except`` clauses keep working (``FileNotFoundError``, ``ValueError``, ``PermissionError``,
``OSError``), and each message names the bad value, what was expected and what
to do about it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "BucketUnavailableError",
    "CatalogFormatError",
    "CatalogNotFoundError",
    "ClusterError",
    "ClusterTimeoutError",
    "DatasetNotFoundError",
    "FileReadError",
    "FrameReadError",
    "HelioError",
    "HelioWarning",
    "IndexParseError",
    "InterruptedRun",
    "OutputLockedError",
    "ReadDeadlineError",
    "StorageAccessError",
    "StorageReadError",
    "TimeRangeError",
    "picklable_cause",
]


class HelioError(Exception):
    """Base of every exception intake-helio raises.

    Each subclass also derives from the matching built-in (``FileNotFoundError``,
    ``ValueError``, ``OSError``, ...), so ``except HelioError`` catches everything the
    package raises and ordinary ``except ValueError`` clauses keep working.
    """


class ArgumentError(HelioError, ValueError):
    """A value given to a function of the package cannot be used."""


class ArgumentTypeError(HelioError, TypeError):
    """A value given to a function of the package has the wrong type."""


class StorageAccessError(HelioError, PermissionError):
    """The store refused access to a catalog, index or file (names the URL)."""


class StorageReadError(HelioError, OSError):
    """A catalog or index could not be read (names the URL and the cause)."""


class ReadDeadlineError(HelioError, TimeoutError):
    """A storage request did not complete within its deadline; it is not retried.

    A request whose body has ``N`` bytes may take ``intake_helio.timeouts.allowance +
    N / intake_helio.timeouts.min-rate`` seconds (:class:`~intake_helio.io.deadline.Deadline`);
    a server that stalls or trickles is cut off once that time has passed.

    Attributes
    ----------
    elapsed : float
        Seconds from the start of the request to its cut-off.
    received : int
        Body bytes received by then.
    allowance : float
        The deadline's allowance (seconds).
    min_rate : float
        The deadline's least rate (bytes per second).
    """

    def __init__(
        self,
        message: str,
        elapsed: float = 0.0,
        received: int = 0,
        allowance: float = 0.0,
        min_rate: float = 0.0,
    ):
        super().__init__(message)
        self.elapsed = elapsed
        self.received = received
        self.allowance = allowance
        self.min_rate = min_rate

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        args = (str(self), self.elapsed, self.received, self.allowance, self.min_rate)
        return (type(self), args)


class InterruptedRun(KeyboardInterrupt):
    """Ctrl-C during :func:`~intake_helio.irradiance` or :func:`~intake_helio.map_frames`,
    with what was finished: nothing computed is lost.

    A ``KeyboardInterrupt`` (not a :class:`HelioError`, so that ``except Exception`` never
    swallows a Ctrl-C), raised from the original one.

    Attributes
    ----------
    partial : xarray.Dataset
        The frames of the parts finished before the interrupt (in time order), as the
        full result would hold them.
    done : list of int, or dict of str to list of int
        Their part numbers (for channels, per channel): pass ``skip=done`` to compute only
        the rest (and combine), or use ``run_irradiance_job(..., resume=True)``, which saves
        every part as it ends.
    """

    def __init__(self, message: str, partial: Any = None, done: Any = None):
        super().__init__(message)
        self.partial = partial
        if isinstance(done, dict):
            self.done: Any = {str(k): list(v) for k, v in done.items()}
        else:
            self.done = list(done or [])


class OutputLockedError(HelioError, OSError):
    """An output directory is in use by another run: refused, so two never write one store.

    The message names the directory, the lock file and its holder (pid, host, start time).

    Attributes
    ----------
    path : str
        The output directory.
    lock : str
        The lock file in it.
    pid : int or None
        The holder's process id (None when its record could not be read).
    holder : dict
        The holder's record as read: ``pid``, ``host``, ``started`` (empty when unreadable).
    """

    def __init__(self, message: str, path: str = "", lock: str = "", holder: Any = None):
        super().__init__(message)
        self.path = path
        self.lock = lock
        self.holder = dict(holder or {})
        pid = self.holder.get("pid")
        self.pid = pid if isinstance(pid, int) else None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        return (type(self), (str(self), self.path, self.lock, self.holder))


class ClusterError(HelioError, RuntimeError):
    """A cluster could not be started, reached or stopped."""


class ClusterTimeoutError(HelioError, TimeoutError):
    """A cluster did not become ready (or stop) in time."""


class HelioWarning(UserWarning):
    """Something was skipped or tolerated, e.g. a malformed optional catalog field."""


class CatalogNotFoundError(HelioError, FileNotFoundError):
    """A registry, bucket catalog or index location does not exist."""


class CatalogFormatError(HelioError, ValueError):
    """A registry or catalog file is not valid JSON or lacks required keys."""


class BucketUnavailableError(HelioError, ConnectionError):
    """A bucket catalog reports status 1400 (temporarily unavailable)."""


class DatasetNotFoundError(HelioError, KeyError):
    """A dataset id is not in a bucket catalog.

    Subclasses ``KeyError`` so that ``bucket["x"]`` behaves like a mapping, but
    prints a readable message (``KeyError`` would show it quoted).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TimeRangeError(HelioError, ValueError):
    """A time value cannot be parsed, or ``start`` is not before ``stop``."""


class IndexParseError(HelioError, ValueError):
    """A row of a yearly file index cannot be parsed.

    Attributes
    ----------
    path : str
        The index file.
    line : int
        1-based line number in that file.
    """

    def __init__(self, message: str, path: str = "", line: int = 0):
        super().__init__(message)
        self.path = path
        self.line = line


class FrameReadError(HelioError, OSError):
    """One frame (one FITS file) could not be read.

    Attributes
    ----------
    datakey : str
        The file that failed.
    reason : str
        A short, stable reason such as ``"missing object"`` or ``"not FITS"``.
    """

    def __init__(self, datakey: str, reason: str, detail: str = ""):
        msg = f"cannot read frame {datakey!r}: {reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.datakey = datakey
        self.reason = reason
        self.detail = detail

    def __reduce__(self):
        return (type(self), (self.datakey, self.reason, self.detail))


class FileReadError(FrameReadError):
    """One file of a time series (CDF, netCDF, HDF5) could not be read.

    A :class:`FrameReadError` (the same ``datakey``, ``reason`` and ``detail``, the same
    handling), whose message speaks of a file rather than a frame.
    """

    def __init__(self, datakey: str, reason: str, detail: str = ""):
        super().__init__(datakey, reason, detail)
        msg = f"cannot read file {datakey!r}: {reason}"
        self.args = (msg + f" ({detail})" if detail else msg,)


def picklable_cause(exc: BaseException) -> BaseException:
    """``exc`` itself if it survives pickling, else a ``RuntimeError`` with its text.

    Exceptions travel back from dask workers pickled together with their cause chain;
    some libraries' exceptions (e.g. imagecodecs' decoder errors) cannot be unpickled,
    which would replace a clear frame error by a confusing ``TypeError`` on the client.
    """
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    return exc
