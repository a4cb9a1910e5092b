"""The few fields of a CDF's internal records that are checked before cdflib reads a file.

cdflib decodes a CDF; these are the checks it does not make, on the bytes themselves and
without allocating what they declare (CDF Internal Format Description, v2 and v3 records):

* the magic number (:func:`cdf_version`): the file is a CDF at all;
* a whole-file compressed CDF (a CCR at byte 8): its declared uncompressed size
  (``uSize``) against ``max_bytes``, and the gzip inflated here in bounded steps
  (:func:`uncompressed`); cdflib would inflate it whole into its own temporary file,
  however large it turns out to be;
* the GDR's ``eof`` against the bytes there are (:func:`declared_eof`): a cut file;
* every internal record's size (:func:`record_starts`), which cdflib reads whole;
* every variable's index of records (:func:`check_vxr_trees`): cdflib follows it to
  the data, listing every entry a VXR says it uses;
* the attributes' lists (:func:`check_attribute_chains`), which cdflib walks as many
  times as they declare;
* the VDR chain (:func:`vdr_offsets`: each VDR a record start, no loop) and each VDR's
  ``MaxRec`` field (:func:`max_rec_offset`), which the backend caps in a private copy to
  learn the layout of a file from two records, and the test builders patch to declare
  hostile sizes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = [
    "CdfRecordError",
    "Uncompressed",
    "cdf_version",
    "check_attribute_chains",
    "check_vxr_trees",
    "declared_eof",
    "max_rec_offset",
    "record_starts",
    "uncompressed",
    "vdr_offsets",
]

#: Magic numbers (first 4 bytes) cdflib reads, and the CDF version each means.
MAGIC: dict[bytes, int] = {
    bytes.fromhex("cdf30001"): 3,
    bytes.fromhex("cdf26002"): 2,
    bytes.fromhex("0000ffff"): 2,
}
#: The second 4 bytes of an uncompressed CDF (else the file is compressed whole).
UNCOMPRESSED = bytes.fromhex("0000ffff")

_ADR, _AgrEDR, _VXR, _VVR, _AzEDR, _CVVR = 4, 5, 6, 7, 9, 13  # internal record types
_GZIP = 5  # CPR compression types
_RLE = 1
_STEP = 1 << 20  # bytes inflated per step


class CdfRecordError(Exception):
    """An internal record of the file is cut (``truncated``) or inconsistent.

    ``truncated`` tells which; the backend turns it into a ``FileReadError``.
    """

    def __init__(self, message: str, truncated: bool):
        super().__init__(message)
        self.truncated = truncated


@dataclass(frozen=True)
class _Fields:
    """Offsets (from a record's start) and widths of the fields read, per version."""

    word: int  # width of offsets and record sizes (8 in v3, 4 in v2)
    cdr_gdr: int
    gdr_rvdr: int
    gdr_zvdr: int
    gdr_eof: int
    gdr_nrvars: int
    gdr_nzvars: int
    rec_next: int  # the next VDR (of a VDR), the next VXR (of a VXR)
    vdr_maxrec: int
    vdr_vxr: int
    vxr_entries: int  # Nentries; NusedEntries follows, then First[], Last[], Offset[]
    gdr_rnumdims: int  # rNumDims (the rDimSizes follow, a few fields on)
    zvdr_numdims: int  # zNumDims of a zVariable's VDR (v3; 0: not checked), then zDimSizes
    ccr_cpr: int
    ccr_usize: int
    ccr_data: int
    cpr_ctype: int
    gdr_adr: int  # ADRhead, then NumAttr
    gdr_natt: int
    adr_gr: int  # AgrEDRhead and NgrEntries; AzEDRhead and NzEntries
    adr_ngr: int
    adr_z: int
    adr_nz: int


_FIELDS = {
    3: _Fields(
        8, 12, 12, 20, 36, 44, 60, 12, 24, 28, 20, 56, 340, 12, 20, 32, 12, 28, 48, 20, 36, 48, 56
    ),
    2: _Fields(4, 8, 8, 12, 20, 24, 40, 8, 16, 20, 12, 36, 0, 8, 12, 20, 8, 16, 28, 12, 24, 36, 40),
}


def cdf_version(head: bytes) -> int | None:
    """The CDF version (2 or 3) of a file starting with ``head``, or None if not a CDF."""
    return MAGIC.get(bytes(head[:4]))


def _int(data: bytes | bytearray, at: int, width: int, what: str) -> int:
    if at < 0 or at + width > len(data):
        raise CdfRecordError(
            f"{what} at byte {at} is beyond the file's {len(data)} bytes", truncated=at >= 0
        )
    return int.from_bytes(data[at : at + width], "big", signed=True)


def _gdr(data: bytes | bytearray, f: _Fields) -> int:
    return _int(data, 8 + f.cdr_gdr, f.word, "the CDR's GDR offset")


def declared_eof(data: bytes | bytearray) -> int:
    """The end of file the GDR of an uncompressed CDF declares (bytes)."""
    f = _FIELDS[cdf_version(data) or 3]
    return _int(data, _gdr(data, f) + f.gdr_eof, f.word, "the GDR's eof")


def _chain(
    data: bytes | bytearray,
    starts: frozenset[int] | None,
    head: int,
    count: int,
    kinds: tuple[int, ...],
    what: str,
) -> list[int]:
    """The ``count`` records of a linked list from ``head`` (each a record of ``kinds``).

    cdflib walks such lists ``count`` times whatever they hold: a count beyond the links
    there are, a loop or a pointer into the middle of a record is refused here.
    """
    f = _FIELDS[cdf_version(data) or 3]
    out: list[int] = []
    at = head
    for _ in range(max(count, 0)):
        ok = at not in out and 0 < at < len(data)
        if ok and starts is not None:
            ok = at in starts and _int(data, at + f.word, 4, "a record's type") in kinds
        if not ok:
            raise CdfRecordError(
                f"{what}: {count} declared; number {len(out)} at byte {at} is not a record "
                "of the file (or is listed twice)",
                truncated=False,
            )
        out.append(at)
        at = _int(data, at + f.rec_next, f.word, f"{what}: a next pointer")
    return out


def vdr_offsets(data: bytes | bytearray, starts: frozenset[int] | None = None) -> list[int]:
    """The byte offsets of every VDR of an uncompressed CDF (rVariables, then zVariables).

    With ``starts`` (:func:`record_starts`), each VDR must start an internal record of its
    type; the chains must not loop or leave the file; a zVariable's dimension count must
    fit in its VDR.
    """
    f = _FIELDS[cdf_version(data) or 3]
    gdr = _gdr(data, f)
    _check_dims(data, gdr, f.gdr_rnumdims, "the GDR's rNumDims")
    out: list[int] = []
    for head, count, kind, what in (
        (f.gdr_rvdr, f.gdr_nrvars, 3, "rVariables"),
        (f.gdr_zvdr, f.gdr_nzvars, 8, "zVariables"),
    ):
        n = _int(data, gdr + count, 4, "the GDR's variable count")
        at = _int(data, gdr + head, f.word, "the GDR's VDR head")
        vdrs = _chain(data, starts, at, n, (kind,), what)
        if kind == 8 and f.zvdr_numdims:
            for vdr in vdrs:
                _check_dims(data, vdr, f.zvdr_numdims, "a zVariable's zNumDims")
        out += vdrs
    return out


def check_attribute_chains(data: bytes | bytearray, starts: frozenset[int]) -> None:
    """Check the ADR chain and each ADR's entry chains (AgrEDRs, AzEDRs) as lists.

    Raises
    ------
    CdfRecordError
        A count beyond its chain, a loop, or a pointer that is not a record of its type.
    """
    f = _FIELDS[cdf_version(data) or 3]
    gdr = _gdr(data, f)
    n = _int(data, gdr + f.gdr_natt, 4, "the GDR's attribute count")
    head = _int(data, gdr + f.gdr_adr, f.word, "the GDR's ADR head")
    for adr in _chain(data, starts, head, n, (_ADR,), "attributes"):
        for entries, count, kind in ((f.adr_gr, f.adr_ngr, _AgrEDR), (f.adr_z, f.adr_nz, _AzEDR)):
            first = _int(data, adr + entries, f.word, "an ADR's entry head")
            number = _int(data, adr + count, 4, "an ADR's entry count")
            _chain(data, starts, first, number, (kind,), f"entries of the ADR at byte {adr}")


def _check_dims(data: bytes | bytearray, record: int, field: int, what: str) -> None:
    """The count at ``record + field`` of 4-byte dimension sizes fits in its record.

    (Checked against the bytes after the count: cdflib loops over that many sizes.)
    """
    f = _FIELDS[cdf_version(data) or 3]
    size = _int(data, record, f.word, "a record's size")
    n = _int(data, record + field, 4, what)
    if not 0 <= n <= (size - field - 4) // 4:
        raise CdfRecordError(f"{what} at byte {record + field} is {n}, more than fit", False)


def max_rec_offset(data: bytes | bytearray, vdr: int) -> int:
    """Where the 4-byte ``MaxRec`` (last record number) of the VDR at ``vdr`` is."""
    return vdr + _FIELDS[cdf_version(data) or 3].vdr_maxrec


@dataclass(frozen=True)
class Uncompressed:
    """An uncompressed CDF (``data``); ``compressed`` tells whether it was compressed."""

    data: bytes
    compressed: bool


def uncompressed(data: bytes, max_bytes: int) -> Uncompressed:
    """``data`` as an uncompressed CDF, inflated in bounded steps when compressed whole.

    Parameters
    ----------
    data : bytes
        A CDF (its magic number already checked).
    max_bytes : int
        The most bytes the uncompressed file may have.

    Returns
    -------
    Uncompressed

    Raises
    ------
    CdfRecordError
        The CCR or CPR is cut or inconsistent, or the gzip stream is corrupt.
    OverflowError
        The declared or the actual uncompressed size is over ``max_bytes`` (nothing
        beyond ``max_bytes`` is inflated).
    """
    if len(data) < 8 or data[4:8] == UNCOMPRESSED:
        return Uncompressed(data, False)
    f = _FIELDS[cdf_version(data) or 3]
    size = _int(data, 8, f.word, "the CCR's size")
    cpr = _int(data, 8 + f.ccr_cpr, f.word, "the CCR's CPR offset")
    usize = _int(data, 8 + f.ccr_usize, f.word, "the CCR's uncompressed size")
    ctype = _int(data, cpr + f.cpr_ctype, 4, "the CPR's compression type")
    if usize + 8 > max_bytes:
        raise OverflowError(f"declares {usize + 8} bytes uncompressed, over {max_bytes}")
    if 8 + size > len(data):
        raise CdfRecordError(
            f"the CCR declares {size} bytes, the file has {len(data) - 8} after its magic",
            truncated=True,
        )
    stream = memoryview(data)[8 + f.ccr_data : 8 + size]
    if ctype == _GZIP:
        body = _inflate(stream, max_bytes - 8)
    elif ctype == _RLE:
        # Run-length coding expands at most 128-fold; cdflib decodes it, bounded by uSize
        # only when the stream is honest (RLE whole-file compression is rare).
        if len(stream) * 128 > max_bytes:
            raise OverflowError(f"RLE stream of {len(stream)} bytes may exceed {max_bytes}")
        return Uncompressed(data, True)
    else:
        raise CdfRecordError(f"compression type {ctype} (expected 5, gzip, or 1, RLE)", False)
    return Uncompressed(data[:4] + UNCOMPRESSED + body, True)


def _inflate(stream: memoryview, limit: int) -> bytes:
    """The gzip ``stream`` inflated, refusing (``OverflowError``) beyond ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    parts: list[bytes] = []
    total = 0
    pending = bytes(stream)
    try:
        while pending and not inflater.eof:
            part = inflater.decompress(pending, _STEP)
            total += len(part)
            if total > limit:
                raise OverflowError(f"inflates to more than {limit} bytes")
            parts.append(part)
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise CdfRecordError(f"corrupt gzip stream: {exc}", truncated=False) from None
    if not inflater.eof:
        raise CdfRecordError("the gzip stream ends before its end marker", truncated=True)
    return b"".join(parts)


def record_starts(data: bytes | bytearray) -> frozenset[int]:
    """Walk the internal records of an uncompressed CDF, from byte 8 to the GDR's ``eof``.

    A CDF is a sequence of internal records (unused space is itself a record, a UIR),
    each starting with its size: every size must reach past the record's own header and
    end within ``eof``. cdflib reads each record whole by its size (a corrupt size would
    have it allocate that many bytes); this is that size checked once for all records.

    Returns
    -------
    frozenset of int
        The byte offset of every internal record.

    Raises
    ------
    CdfRecordError
        A record's size is too small or reaches past the end of the file.
    """
    f = _FIELDS[cdf_version(data) or 3]
    eof = declared_eof(data)
    header = f.word + 4
    pos, starts = 8, []
    while pos < eof:
        size = _int(data, pos, f.word, "an internal record's size")
        if size < header or pos + size > eof:
            raise CdfRecordError(
                f"the internal record at byte {pos} declares {size} bytes, where "
                f"{header} to {eof - pos} fit before the end of file ({eof})",
                truncated=False,
            )
        starts.append(pos)
        pos += size
    return frozenset(starts)


def check_vxr_trees(data: bytes | bytearray, vdrs: list[int], starts: frozenset[int]) -> None:
    """Check the VXR tree of each VDR: every pointer a record of the right type, once.

    A VXR lists ``NusedEntries`` of its ``Nentries`` (each a record range and the offset
    of a VVR, a CVVR or a further VXR) and points to the next VXR. cdflib follows them
    all, unchecked: a used count beyond the entries there are, or a pointer into the
    middle of a record, would have it read or list without bound.

    Raises
    ------
    CdfRecordError
        A pointer that is not a record start of the expected type, a record visited twice,
        or more used entries than the VXR holds.
    """
    f = _FIELDS[cdf_version(data) or 3]

    def kind(at: int) -> int:
        return _int(data, at + f.word, 4, "a record's type") if at in starts else -1

    seen: set[int] = set()
    pending = [_int(data, v + f.vdr_vxr, f.word, "a VDR's VXR head") for v in vdrs]
    while pending:
        at = pending.pop()
        if at == 0:
            continue
        if at in seen or kind(at) != _VXR:
            raise CdfRecordError(f"byte {at} is not a VXR of the file (or is listed twice)", False)
        seen.add(at)
        size = _int(data, at, f.word, "a VXR's size")
        n = _int(data, at + f.vxr_entries, 4, "a VXR's entries")
        used = _int(data, at + f.vxr_entries + 4, 4, "a VXR's used entries")
        first = at + f.vxr_entries + 8
        if not 0 <= used <= n or first + n * (8 + f.word) > at + size:
            raise CdfRecordError(
                f"the VXR at byte {at} declares {used} used of {n} entries, in {size} bytes",
                False,
            )
        pending.append(_int(data, at + f.rec_next, f.word, "a VXR's next VXR"))
        for i in range(used):
            entry = _int(data, first + 8 * n + f.word * i, f.word, "a VXR entry")
            if entry in seen or kind(entry) not in (_VXR, _VVR, _CVVR):
                raise CdfRecordError(
                    f"entry {i} of the VXR at byte {at} points to byte {entry}, not a VVR, "
                    "CVVR or VXR of the file (or to one listed twice)",
                    False,
                )
            if kind(entry) == _VXR:
                pending.append(entry)
            else:
                seen.add(entry)
