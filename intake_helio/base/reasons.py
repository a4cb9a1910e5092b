"""The one list of per-frame outcomes: ``"ok"`` or why a frame has no value.

Every frame of every result ends with one of these in its ``status`` (or ``read_status``)
coordinate; a status may add detail after the reason and a colon
(``"function error: peak raised ValueError: ..."``; ``"quality flag 0x00000400"`` has its
flags after a space); :func:`reason_of` gives the reason.
:class:`Reason` is a ``str`` enum, so its members compare equal to the plain strings saved
in CSV/netCDF results (``Reason.TRUNCATED == "truncated"``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .errors import ArgumentError

__all__ = ["FAILURE_REASONS", "REFUSED_COLUMN", "Reason", "reason_of", "refusals"]


class Reason(enum.StrEnum):
    """Why a frame has a value or not (the ``status`` of each frame)."""

    OK = "ok"
    #: The object does not exist (HTTP 404, ``NoSuchKey``).
    MISSING_OBJECT = "missing object"
    #: The store refused access (HTTP 403, ``AccessDenied``).
    PERMISSION_DENIED = "permission denied"
    #: The object has no bytes.
    EMPTY_FILE = "empty file"
    #: The bytes do not start with a FITS header.
    NOT_FITS = "not FITS"
    #: The file ends before its declared data.
    TRUNCATED = "truncated"
    #: No HDU holds a 2-D image (or the requested HDU does not).
    NO_IMAGE_HDU = "no image HDU"
    #: ``units="DN/s"`` but the header has no usable ``EXPTIME``.
    NO_EXPTIME = "no EXPTIME"
    #: Compressed tiles or headers that cannot be decoded.
    CORRUPT_DATA = "corrupt data"
    #: I/O that kept failing after the retries (5xx, resets, timeouts).
    READ_ERROR = "read error"
    #: The frame's shape differs from the array's.
    SHAPE_MISMATCH = "shape mismatch"
    #: The frame declares more pixels than ``intake_helio.max-frame-pixels``, or its file
    #: is larger than ``intake_helio.max-file-bytes`` (nothing that large is allocated).
    IMAGE_TOO_LARGE = "image too large"
    #: Every pixel of the frame (or window) is BLANK.
    ALL_PIXELS_BLANK = "all pixels blank"
    #: Reading the frame raised ``ValueError``/``TypeError`` (e.g. a bad argument).
    INVALID_ARGUMENT = "invalid argument"
    #: Reading the frame ran out of memory.
    OUT_OF_MEMORY = "out of memory"
    #: Anything else (the error's type is kept in the detail).
    UNEXPECTED_ERROR = "unexpected error"
    #: No frame of the selection could be read to learn the frames' shape.
    NO_READABLE_FRAME = "no readable frame to probe"
    #: A science function given to ``map_frames`` raised on this frame, or returned
    #: something unusable; the status continues with ``": <function> raised <Type>: ..."``.
    FUNCTION_ERROR = "function error"
    #: The worker reading the frame died (e.g. out of memory) more often than dask allows.
    WORKER_DIED = "worker died while reading"
    #: A URL named by catalog content (an index datakey, a dataset's index, a registry
    #: endpoint) is refused by the URL policy (``intake_helio.url-policy.*``); never read.
    URL_NOT_ALLOWED = "URL not allowed"
    #: The store needs credentials and none were found (botocore ``NoCredentialsError``).
    NO_CREDENTIALS = "no credentials"
    #: A channel of ``open_channels`` has no frame near this time (nothing is read).
    NO_FRAME_WITHIN_TOLERANCE = "no frame within tolerance"
    #: ``quality="good"`` was asked for and the frame's header ``QUALITY`` is not 0 (its
    #: pixels are not decoded); the status continues with the flags as
    #: ``" 0x%08x"`` (``"quality flag 0x00000400"``), or is the bare reason when
    #: ``QUALITY`` is not an integer.
    QUALITY_FLAG = "quality flag"
    #: ``correct_degradation=True`` and the correction table has no factor for the frame:
    #: its channel (``WAVELNTH``) is not in the table, its time is outside the table's
    #: epochs, or the header has no usable time; the status continues with ``": ..."``.
    NO_CORRECTION = "no degradation correction"
    # --- time-series files (CDF, netCDF, HDF5): one reason per file of a series
    #: The bytes are not a CDF file (no CDF magic number).
    NOT_CDF = "not CDF"
    #: The bytes are not a netCDF file (netCDF3 classic/64-bit, or netCDF4/HDF5 that
    #: xarray's engines open with named dimensions).
    NOT_NETCDF = "not netCDF"
    #: The file has no time variable to put along ``time`` (no ``DEPEND_0`` epoch in a
    #: CDF, no time coordinate in a netCDF file), or not the one asked for (``time=``).
    NO_TIME = "no time variable"
    #: The file's times are unsorted, or fill values (``FILLVAL``, NaT).
    BAD_TIMES = "bad times"
    #: The file's variables (names, types, shapes) differ from the series' first file.
    VARIABLES_DIFFER = "variables differ"
    #: The records and variables a file declares would decode to more than
    #: ``intake_helio.max-series-bytes`` (nothing is allocated), or the file is larger
    #: than ``intake_helio.max-file-bytes``.
    FILE_TOO_LARGE = "file too large"


#: The file-list column of files that must not be read (the URL policy refused their
#: datakey): the reason, ``"URL not allowed: ..."``, or ``""`` for a file to read.
REFUSED_COLUMN = "refused"


def refusals(refused: Iterable[object], error: type[Exception]) -> list[str]:
    """Per row of a file list's :data:`REFUSED_COLUMN`: its URL policy refusal, or ``""``.

    Raises ``error`` for a value that is neither ``""`` (or missing) nor a
    ``"URL not allowed: ..."`` reason (a column of the user's own with that name).
    """
    out = []
    for why in refused:
        why = why if isinstance(why, str) else ""
        if why and not why.startswith(str(Reason.URL_NOT_ALLOWED)):
            raise error(
                f"the file list's {REFUSED_COLUMN!r} column holds {why[:60]!r}; expected '' or "
                f"'{Reason.URL_NOT_ALLOWED}: ...' (as Dataset.files(keep_refused=True) gives); "
                "rename the column if it is your own"
            )
        out.append(why)
    return out


#: Every reason except ``"ok"``.
FAILURE_REASONS: tuple[Reason, ...] = tuple(r for r in Reason if r is not Reason.OK)

#: Reasons whose detail follows a space instead of a colon (``"quality flag 0x00000400"``).
_SPACE_DETAIL: frozenset[Reason] = frozenset({Reason.QUALITY_FLAG})


def reason_of(status: str) -> Reason:
    """The :class:`Reason` a status string starts with.

    Parameters
    ----------
    status : str
        A reason, a reason followed by ``": <detail>"``, or (for
        :attr:`Reason.QUALITY_FLAG`) by ``" <flags>"``: ``"quality flag 0x00000400"``.

    Returns
    -------
    Reason

    Raises
    ------
    ValueError
        When ``status`` does not start with a known reason.
    """
    for reason in sorted(Reason, key=lambda r: -len(r.value)):
        if status == reason.value or status.startswith(reason.value + ":"):
            return reason
        if reason in _SPACE_DETAIL and status.startswith(reason.value + " "):
            return reason
    raise ArgumentError(f"status {status!r} does not start with a known reason")
