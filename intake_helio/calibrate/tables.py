"""AIA's degradation correction table, as aiapy reads it, checked at the boundary.

:func:`correction_table` turns what a user passes as ``correction_table`` (a file path, an
astropy table as :func:`aiapy.calibrate.util.get_correction_table` returns it, or None for
aiapy's default source, JSOC, which needs the network) into a :class:`CorrectionTable`:
the table and a one-line description of where it came from (file name, versions), which
results and saved files record. Every failure is one line that says what to pass instead.
aiapy (the ``aia`` extra) is imported here only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import HelioError

__all__ = [
    "REQUIRED_COLUMNS",
    "CalibrationError",
    "CorrectionTable",
    "CorrectionTableNotFoundError",
    "MissingAiapyError",
    "aiapy_calibrate",
    "correction_table",
]

#: The columns aiapy's ``degradation`` reads from a correction table.
REQUIRED_COLUMNS = (
    "DATE",
    "VER_NUM",
    "WAVE_STR",
    "WAVELNTH",
    "T_START",
    "T_STOP",
    "EFFA_P1",
    "EFFA_P2",
    "EFFA_P3",
    "EFF_AREA",
)

_PASS_A_FILE = (
    "pass correction_table= a local aia_V*_response_table.txt file (SSW's "
    "sdo/aia/response/ holds them; aiapy's tests ship one)"
)


class CalibrationError(HelioError, ValueError):
    """A calibration cannot be done as asked (a bad or unreachable correction table)."""


class CorrectionTableNotFoundError(CalibrationError, FileNotFoundError):
    """The correction table file does not exist."""


class MissingAiapyError(HelioError, ImportError):
    """aiapy (the ``aia`` extra) is needed and not installed."""


def aiapy_calibrate(what: str = "correct_degradation=True") -> Any:
    """``aiapy.calibrate``, or :class:`MissingAiapyError` naming the extra to install."""
    try:
        import aiapy.calibrate
        import aiapy.calibrate.util
    except ImportError as exc:
        raise MissingAiapyError(
            f'{what} needs aiapy ({exc}): python -m pip install "intake-helio[aia]"'
        ) from exc
    return aiapy.calibrate


@dataclass(frozen=True)
class CorrectionTable:
    """A degradation correction table and where it came from.

    Attributes
    ----------
    table : astropy.table.QTable
        The table as :func:`aiapy.calibrate.util.get_correction_table` returns it.
    source : str
        Its file name, ``"JSOC"``, or ``"an astropy table"``.
    versions : tuple of int
        The table's calibration versions (``VER_NUM``).
    """

    table: Any
    source: str
    versions: tuple[int, ...]

    def describe(self) -> str:
        """One line for results' attributes and saved files (and a run's identity): the
        source, its versions, a digest of the rows aiapy's factor reads, aiapy's version."""
        return self._description

    @functools.cached_property
    def _description(self) -> str:  # a run asks for it several times: made once
        import aiapy

        ver = ",".join(str(v) for v in self.versions)
        return f"{self.source} (VER_NUM {ver}; rows {self.digest()}; aiapy {aiapy.__version__})"

    def digest(self) -> str:
        """8 hex digits of the table's rows (two tables with the same rows: the same)."""
        h = hashlib.sha256()
        for name in REQUIRED_COLUMNS:
            column = self.table[name]
            with warnings.catch_warnings():  # erfa: "dubious year" for epochs ending in 2030
                warnings.filterwarnings("ignore", message=".*dubious year")
                text = getattr(column, "isot", None)
            values = text if text is not None else getattr(column, "value", column)
            h.update(name.encode())
            h.update(repr([str(v) for v in values]).encode())
        return h.hexdigest()[:8]


def correction_table(source: Any = None) -> CorrectionTable:
    """Read and check a degradation correction table with aiapy.

    Parameters
    ----------
    source : str, os.PathLike, astropy.table.Table, CorrectionTable or None
        A table file (``aia_V*_response_table.txt``), an astropy table with aiapy's
        columns (:data:`REQUIRED_COLUMNS`), or None: aiapy's default source (JSOC's
        ``aia.response`` series, which needs the network).

    Returns
    -------
    CorrectionTable

    Raises
    ------
    MissingAiapyError
        Without aiapy.
    CorrectionTableNotFoundError
        For a path that does not exist.
    CalibrationError
        For a table that lacks aiapy's columns, a file aiapy cannot read, or a default
        source that cannot be reached (the message says to pass a file).
    """
    if isinstance(source, CorrectionTable) and source.table is not None:
        return source
    calibrate = aiapy_calibrate()
    util = calibrate.util
    if source is None:
        try:
            table = util.get_correction_table("JSOC")
        except Exception as exc:
            raise CalibrationError(
                f"cannot fetch AIA's degradation correction table from JSOC "
                f"({type(exc).__name__}: {_first_line(exc)}); {_PASS_A_FILE}"
            ) from exc
        return CorrectionTable(table, "JSOC aia.response", _versions(table))
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise CorrectionTableNotFoundError(
                f"correction_table={str(source)!r}: no such file; {_PASS_A_FILE}"
            )
        try:
            table = util.get_correction_table(path)
        except Exception as exc:
            raise _unreadable(path, exc) from exc
        return CorrectionTable(table, path.name, _versions(table))
    names = getattr(source, "colnames", None)
    if names is None:
        raise CalibrationError(
            f"correction_table={type(source).__name__!r} object; expected a file path, an "
            "astropy table as aiapy.calibrate.util.get_correction_table returns it, or None"
        )
    missing = _missing_columns(names, "the table given")
    if missing is not None:
        raise missing
    return CorrectionTable(source, "an astropy table", _versions(source))


def _unreadable(path: Path, exc: BaseException) -> CalibrationError:
    """Why aiapy could not read the table file ``path``: not an ASCII table, its missing
    columns, or aiapy's own error (the file is read again only to say which)."""
    from astropy.io import ascii as astropy_ascii

    try:
        raw = astropy_ascii.read(path)
    except Exception as why:
        return CalibrationError(
            f"correction_table={path.name!r} cannot be read as an ASCII table "
            f"({type(why).__name__}: {_first_line(why)}); expected an AIA response "
            "table (aia_V*_response_table.txt)"
        )
    missing = _missing_columns(raw.colnames, repr(path.name))
    return missing or CalibrationError(
        f"aiapy cannot read correction_table={path.name!r} "
        f"({type(exc).__name__}: {_first_line(exc)})"
    )


def _missing_columns(names, what: str) -> CalibrationError | None:
    """The error of a table whose columns ``names`` lack aiapy's (None: they are all there)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        return CalibrationError(
            f"correction_table {what} lacks the columns {', '.join(missing)} (it has "
            f"{', '.join(list(names)[:12]) or 'none'}); expected an AIA response table as "
            "aiapy.calibrate.util.get_correction_table reads it"
        )
    return None


def _versions(table) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) for v in table["VER_NUM"]}))
    except (TypeError, ValueError):
        return ()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
