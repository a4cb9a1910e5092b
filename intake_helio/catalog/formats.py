"""A dataset's ``filetype`` (third-party text) as the format intake-helio reads it, or why not.

The CloudCatalog's ``filetype`` is one of ``fits``, ``csv``, ``cdf``, ``netcdf3``,
``netcdf4``, ``hdf5``, ``datamap``, ``txt``, ``binary``, ``other``; live catalogs also
write comma lists (``"fits,csv"``) and upper case (``"FITS"``). :func:`format_of` reads
it case-insensitively and takes the first known entry of a list. :data:`OPENS_AS` says
which formats intake-helio opens and as what; any other dataset is refused by
:func:`check_openable` before a file is read (its files stay listed by ``Dataset.files``).
"""

from __future__ import annotations

from ..base.errors import HelioError
from ..base.text import safe_text

__all__ = ["FILETYPES", "OPENS_AS", "UnsupportedFormatError", "check_openable", "format_of"]

#: The CloudCatalog's file types, as its specification lists them.
FILETYPES = (
    "fits",
    "csv",
    "cdf",
    "netcdf3",
    "netcdf4",
    "hdf5",
    "datamap",
    "txt",
    "binary",
    "other",
)
#: Formats intake-helio opens, and as what: ``"frames"`` (``Dataset.to_dataarray``, a lazy
#: ``(time, y, x)`` DataArray) or ``"series"`` (``Dataset.to_dataset``, a lazy Dataset
#: along ``time``).
OPENS_AS = {
    "fits": "frames",
    "cdf": "series",
    "netcdf3": "series",
    "netcdf4": "series",
    "hdf5": "series",
}
#: The method that opens each kind.
_OPENER = {"frames": "to_dataarray", "series": "to_dataset"}


class UnsupportedFormatError(HelioError, ValueError):
    """A dataset's files are in a format intake-helio does not open (raised before any read)."""


def format_of(filetype: object) -> str | None:
    """The format of a catalog ``filetype``: its first known entry, lower case; None if none.

    Parameters
    ----------
    filetype : object
        The catalog's value (a string such as ``"FITS"`` or ``"cdf, csv"``; anything else
        has no format).
    """
    if not isinstance(filetype, str):
        return None
    for part in filetype.split(","):
        name = part.strip().lower()
        if name in FILETYPES:
            return name
    return None


def _supported() -> str:
    return "; ".join(
        f"{', '.join(repr(f) for f, k in OPENS_AS.items() if k == kind)} as {kind}"
        for kind in _OPENER
    )


def check_openable(
    dataset_id: str, filetype: object, forced: str | None = None, want: str | None = None
) -> str:
    """The format to open ``dataset_id`` with, or :class:`UnsupportedFormatError`.

    Parameters
    ----------
    dataset_id : str
        For the message.
    filetype : object
        The catalog's ``filetype`` of the dataset.
    forced : str, optional
        A format the user gives instead (``filetype=`` of ``Dataset.to_dataarray`` or
        ``to_dataset``), for a catalog whose ``filetype`` is wrong.
    want : {"frames", "series"}, optional
        What the caller opens: a format that opens as the other kind is refused, with
        the method that opens it named.

    Raises
    ------
    UnsupportedFormatError
        Neither ``forced`` nor the catalog's ``filetype`` names a format in
        :data:`OPENS_AS` (of the kind ``want``).
    """
    if forced is not None:
        name = format_of(forced)
        if name not in OPENS_AS:
            expected = ", ".join(repr(f) for f in OPENS_AS)
            raise UnsupportedFormatError(
                f"filetype={safe_text(forced, 80)!r}; expected one of {expected}"
            )
    else:
        name = format_of(filetype)
    shown = safe_text(forced if forced is not None else filetype, 80)
    if name not in OPENS_AS:
        what = (
            f"filetype {shown!r}"
            if name is None or name == shown
            else f"filetype {shown!r} ({name})"
        )
        raise UnsupportedFormatError(
            f"dataset {dataset_id!r} has {what}: intake-helio opens {_supported()}; its "
            "files are listed by .files(), or pass filetype='fits' (or 'cdf', 'netcdf4', "
            "...) if the catalog's filetype is wrong"
        )
    kind = OPENS_AS[name]
    if want is not None and kind != want:
        raise UnsupportedFormatError(
            f"dataset {dataset_id!r} has filetype {shown!r}: its files open as {kind}, "
            f"with .{_OPENER[kind]}(...) (or the intake entry's to_dask()), not as {want}"
        )
    return name
