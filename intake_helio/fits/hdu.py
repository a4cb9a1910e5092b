"""The HDU walk: parse FITS headers block by block, classify HDUs and find the image HDU.

Headers are read from a :class:`~intake_helio.fits.source._Source` in growing chunks (only
header bytes are fetched), each HDU is classified as an image, a tile-compressed image or
something else (:class:`_HDU`), and its header is offered as astropy sees it (the image
header of a compressed image) or as plain Python values.

What a header declares is bounded before it is used: one header has at most
``intake_helio.max-header-bytes``, the walk stops after ``intake_helio.max-hdus`` HDUs,
axis and column counts are at most 999 (the FITS standard's limit), and messages name
keywords and numbers, never the text of the file.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from ..base.errors import FrameReadError, HelioError
from ..base.reasons import Reason
from ..base.settings import Settings
from ..io.shims import bintable_header_to_image_header
from .cards import Cards
from .source import _few, _Source

__all__ = [
    "_BITPIX_DTYPE",
    "_BLOCK",
    "_CARD",
    "_HDU",
    "AutoHDU",
    "_HeaderValueError",
    "_classify",
    "_count",
    "_find_end",
    "_header_dict",
    "_image_header",
    "_int",
    "_locate",
    "_plain",
    "_read_header",
    "_shape",
]

_BLOCK = 2880
_CARD = 80
_MAX_AXES = 999  # NAXIS, ZNAXIS, TFIELDS: the FITS standard's most
#: XTENSION values of the FITS standard (other values are never quoted back)
_XTENSIONS = ("IMAGE", "BINTABLE", "TABLE", "IUEIMAGE", "A3DTABLE", "FOREIGN", "DUMP")

_BITPIX_DTYPE = {
    8: np.dtype(np.uint8),
    16: np.dtype(np.int16),
    32: np.dtype(np.int32),
    64: np.dtype(np.int64),
    -32: np.dtype(np.float32),
    -64: np.dtype(np.float64),
}


@dataclass(frozen=True)
class AutoHDU:
    """``hdu="auto"`` with a first guess: each frame's own image HDU, ``first`` tried first.

    Frames of one dataset may come in different forms (an uncompressed image in the
    primary HDU beside RICE_1 tile-compressed copies in extension 1). The array's probes
    give the most common image HDU as ``first``; each frame is read at ``first`` when that
    HDU is an image, and otherwise at its first image HDU (the walk of ``hdu="auto"``).

    Attributes
    ----------
    first : int
        The HDU index tried first (the probed frames' most common image HDU).
    """

    first: int

    def __str__(self) -> str:
        return "auto"


@dataclass
class _HDU:
    index: int
    header: Cards  # raw header (the BINTABLE's for compressed images)
    header_start: int
    data_start: int
    data_size: int  # unpadded
    kind: str  # "image", "compressed" or "other"
    why: str = ""  # for "other": what it is
    npix: int = 0  # pixels of the image ("image" and "compressed")

    @property
    def next_offset(self) -> int:
        return self.data_start + _BLOCK * math.ceil(self.data_size / _BLOCK)

    @property
    def extname(self) -> str:
        return str(self.header.get("EXTNAME", "")).strip().upper()


def _find_end(buf: bytes | memoryview, first_block: int) -> int | None:
    """Index of the block holding the END card, scanning complete blocks only."""
    nblocks = len(buf) // _BLOCK
    for b in range(first_block, nblocks):
        base = b * _BLOCK
        for c in range(base, base + _BLOCK, _CARD):
            if buf[c : c + 3] == b"END" and bytes(buf[c + 3 : c + _CARD]).strip() == b"":
                return b
    return None


def _read_header(
    src: _Source, off: int, header_read: int, max_bytes: int = 2**23
) -> tuple[Cards, int] | None:
    """Parse the header starting at ``off``; None at a clean end of the HDU list.

    The first read is ``header_read`` bytes (half of it after the primary header), doubled
    until the END card is found, up to ``max_bytes`` bytes of header.
    """
    chunk = min(header_read if off == 0 else header_read // 2, max_bytes)
    buf = b""
    scanned = 0
    while True:
        data = bytes(src.get(off + len(buf), off + len(buf) + chunk))
        if not buf:
            if not data:
                if off == 0:
                    raise FrameReadError(src.key, Reason.EMPTY_FILE, "the object has 0 bytes")
                return None
            if off == 0 and not data.startswith(b"SIMPLE  ="):
                raise FrameReadError(
                    src.key,
                    Reason.NOT_FITS,
                    f"expected 'SIMPLE  =' in the first {_CARD} bytes; got {len(data)} bytes",
                )
            if off > 0 and not data.startswith(b"XTENSION="):
                return None  # trailing bytes that are not an extension: astropy ignores them
        buf += data
        end_block = _find_end(buf, scanned)
        if end_block is not None:
            hlen = (end_block + 1) * _BLOCK
            return Cards(buf[:hlen].decode("ascii", errors="replace")), off + hlen
        scanned = len(buf) // _BLOCK
        if len(data) < chunk:
            raise FrameReadError(
                src.key,
                Reason.TRUNCATED,
                f"the file ends at byte {off + len(buf)} inside the header that starts at {off}",
            )
        if len(buf) >= max_bytes:
            raise FrameReadError(
                src.key,
                Reason.CORRUPT_DATA,
                f"no END card in the first {len(buf)} bytes of the header that starts at byte "
                f"{off}, the limit intake_helio.max-header-bytes (raise it for longer headers)",
            )
        chunk = min(chunk * 2, max_bytes - len(buf))


class _HeaderValueError(HelioError, ValueError):
    """A header keyword holds no usable value (the message names it, never its text)."""


def _int(header: Cards, key: str, default: int | None = None) -> int:
    """An integer keyword; the error names the keyword and the kind of value, not the value."""
    value = header.get(key, default)
    if value is None:
        raise _HeaderValueError(f"header keyword {key} is missing")
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 20:
        return int(value.strip())
    raise _HeaderValueError(
        f"header keyword {key} should hold an integer, it holds a {type(value).__name__}"
    )


def _count(header: Cards, key: str, default: int | None = None, hi: int = _MAX_AXES) -> int:
    """An integer keyword that must be in ``0..hi`` (an axis or column count, a length)."""
    value = _int(header, key, default)
    if not 0 <= value <= hi:
        raise _HeaderValueError(f"header keyword {key}={value} is outside 0..{hi}")
    return value


def _why(exc: BaseException) -> str:
    """What went wrong in a header, without quoting it (foreign errors: their type only)."""
    return str(exc) if isinstance(exc, _HeaderValueError) else type(exc).__name__


def _classify(index: int, header: Cards, hstart: int, dstart: int) -> _HDU:
    primary = index == 0
    bitpix = _int(header, "BITPIX")
    naxis = _count(header, "NAXIS", 0)
    dims = [_count(header, f"NAXIS{i}", 0, hi=2**62) for i in range(1, naxis + 1)]
    gcount = _count(header, "GCOUNT", 1, hi=2**62)
    pcount = _count(header, "PCOUNT", 0, hi=2**62)
    groups = primary and naxis > 0 and dims[0] == 0 and bool(header.get("GROUPS", False))
    if naxis == 0:
        size = 0
    else:
        npix = math.prod(dims[1:]) if groups else math.prod(dims)
        size = abs(bitpix) // 8 * gcount * (pcount + npix)
    xtension = "IMAGE" if primary else str(header.get("XTENSION", "")).strip().upper()
    kind, why, npix = "other", "", 0
    if xtension == "IMAGE" and not groups:
        if naxis >= 2 and all(d > 0 for d in dims) and all(d == 1 for d in dims[2:]):
            kind, npix = "image", math.prod(dims)
        else:
            why = f"an image with NAXIS={naxis} and shape {_dims(dims)}"
    elif xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        znaxis = _count(header, "ZNAXIS", 0)
        zdims = [_count(header, f"ZNAXIS{i}", 0, hi=2**62) for i in range(1, znaxis + 1)]
        if znaxis >= 2 and all(d > 0 for d in zdims) and all(d == 1 for d in zdims[2:]):
            kind, npix = "compressed", math.prod(zdims)
        else:
            why = f"a compressed image with ZNAXIS={znaxis} and shape {_dims(zdims)}"
    else:
        known = xtension if xtension in _XTENSIONS else "non-standard"
        why = "random groups" if groups else f"a {known} HDU"
    return _HDU(index, header, hstart, dstart, size, kind, why, npix)


def _dims(dims: list[int]) -> str:
    """A shape for a message: (ny, nx), the other axes summarised when there are many."""
    shown = tuple(reversed(dims))
    return (
        str(shown)
        if len(shown) <= 4
        else f"({', '.join(map(str, shown[:3]))}, ... {len(shown)} axes)"
    )


def _locate(src: _Source, hdu: int | str, settings: Settings) -> _HDU:
    """Walk the HDU headers up to the requested image HDU (see :func:`_read_header`).

    At most ``settings.max_hdus`` HDUs are walked, each header at most
    ``settings.max_header_bytes`` long.
    """
    if isinstance(hdu, AutoHDU):
        return _locate_auto(src, hdu.first, settings)
    off, index, seen = 0, 0, []
    while True:
        if index >= settings.max_hdus:
            wanted = "an image HDU" if hdu == "auto" else f"HDU {hdu!r}"
            raise FrameReadError(
                src.key,
                Reason.NO_IMAGE_HDU,
                f"looked for {wanted} in the first {index} HDUs, the limit "
                f"intake_helio.max-hdus (raise it for longer files): {_summary(seen)}",
            )
        if index:  # many small HDUs in a row: fetch ahead in growing steps (linear walk)
            src.read_ahead(off, off + settings.header_read_size // 2)
        got = _read_header(src, off, settings.header_read_size, settings.max_header_bytes)
        if got is None:
            break
        header, dstart = got
        try:
            info = _classify(index, header, off, dstart)
        except Exception as exc:
            reason = Reason.NOT_FITS if index == 0 else Reason.CORRUPT_DATA
            raise FrameReadError(src.key, reason, f"HDU {index} header: {_why(exc)}") from exc
        if hdu == "auto":
            hit = info.kind != "other"
        elif isinstance(hdu, str):
            hit = info.extname == hdu.strip().upper()
        else:
            hit = index == hdu
        if hit:
            if info.kind == "other":
                raise FrameReadError(
                    src.key, Reason.NO_IMAGE_HDU, f"HDU {hdu!r} is {info.why}, not a 2-D image"
                )
            return info
        seen.append(info.why or info.kind)
        off = info.next_offset
        index += 1
    wanted = "an image HDU" if hdu == "auto" else f"HDU {hdu!r}"
    raise FrameReadError(
        src.key,
        Reason.NO_IMAGE_HDU,
        f"looked for {wanted} among {index} HDU(s): {_summary(seen)}",
    )


def _locate_auto(src: _Source, first: int, settings: Settings) -> _HDU:
    """The image HDU ``first`` if it is one, else the file's first image HDU.

    FITS has no directory: reaching HDU ``first`` walks the headers before it anyway. The
    first image met on the way is kept; the walk stops at ``first`` when that is an image,
    and goes on past it (as ``hdu="auto"``) when neither it nor any HDU before it is one.
    """
    off, index, seen = 0, 0, []
    earliest: _HDU | None = None
    while index < settings.max_hdus:
        if index:
            src.read_ahead(off, off + settings.header_read_size // 2)
        got = _read_header(src, off, settings.header_read_size, settings.max_header_bytes)
        if got is None:
            break
        header, dstart = got
        try:
            info = _classify(index, header, off, dstart)
        except Exception as exc:
            if earliest is not None:  # a broken HDU after the image found: use that image
                return earliest
            reason = Reason.NOT_FITS if index == 0 else Reason.CORRUPT_DATA
            raise FrameReadError(src.key, reason, f"HDU {index} header: {_why(exc)}") from exc
        if info.kind != "other":
            if index >= first:  # HDU ``first`` itself, or the first image after it
                return info
            earliest = earliest or info
        elif index >= first and earliest is not None:
            return earliest
        seen.append(info.why or info.kind)
        off = info.next_offset
        index += 1
    if earliest is not None:
        return earliest
    limit = index >= settings.max_hdus
    raise FrameReadError(
        src.key,
        Reason.NO_IMAGE_HDU,
        f"looked for an image HDU in the first {index} HDUs, the limit intake_helio.max-hdus "
        f"(raise it for longer files): {_summary(seen)}"
        if limit
        else f"looked for an image HDU among {index} HDU(s): {_summary(seen)}",
    )


def _summary(seen: list[str]) -> str:
    """What the HDUs walked were, runs of the same kind counted, a few runs only."""
    runs: list[list] = []
    for what in seen:
        if runs and runs[-1][0] == what:
            runs[-1][1] += 1
        else:
            runs.append([what, 1])
    return _few([what if n == 1 else f"{n} x {what}" for what, n in runs])


# --------------------------------------------------------------------------- header helpers
def _image_header(info: _HDU) -> fits.Header:
    """The image header (for compressed images: astropy's uncompressed image header)."""
    if info.kind != "compressed":
        return info.header.astropy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bintable_header_to_image_header(info.header.astropy)


def _plain(value: Any) -> Any:
    if isinstance(value, fits.card.Undefined):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header_dict(header: fits.Header) -> dict[str, Any]:
    out: dict[str, Any] = {}
    commentary: dict[str, list[str]] = {}
    for card in header.cards:
        key = card.keyword
        if key in ("COMMENT", "HISTORY", ""):
            if key:
                commentary.setdefault(key, []).append(str(card.value))
            continue
        if key not in out:
            out[key] = _plain(card.value)
    for key, lines in commentary.items():
        out[key] = "\n".join(lines)
    return out


def _shape(info: _HDU) -> tuple[int, int]:
    h = info.header
    if info.kind == "compressed":
        return _int(h, "ZNAXIS2"), _int(h, "ZNAXIS1")
    return _int(h, "NAXIS2"), _int(h, "NAXIS1")


# --------------------------------------------------------------------------- refusals
def _check_quality(src: _Source, info: _HDU) -> None:
    """Refuse a frame whose header ``QUALITY`` is not 0 (reason ``"quality flag 0x%08x"``).

    A missing ``QUALITY`` card, or one without a value, counts as good. For a compressed
    image the card is read from the table's header (where astropy keeps the image's cards).
    A ``QUALITY`` that is not an integer gets the bare reason ``"quality flag"``.
    """
    value = _plain(info.header.get("QUALITY"))
    if value is None:
        return
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    )
    if not integral:
        raise FrameReadError(
            src.key,
            Reason.QUALITY_FLAG,
            f"header QUALITY is a {type(value).__name__}, not an integer (its text is not "
            "shown); quality='good' keeps only frames whose QUALITY is 0; open with "
            "quality=None to read it",
        )
    flags = int(value)
    if flags:
        # a negative value is the signed form of a 32-bit (or 64-bit) word: show its bits
        bits = flags if flags > 0 else flags % (1 << (32 if flags >= -(1 << 31) else 64))
        raise FrameReadError(
            src.key,
            f"{Reason.QUALITY_FLAG} 0x{bits:08x}",
            f"header QUALITY={flags}; quality='good' keeps only frames whose QUALITY is 0; "
            "open with quality=None to read it",
        )


def _check_pixels(src: _Source, info: _HDU, settings: Settings) -> None:
    """Refuse an image that declares more than ``max_frame_pixels`` (before any allocation)."""
    if info.npix > settings.max_frame_pixels:
        ny, nx = _shape(info)
        raise FrameReadError(
            src.key,
            Reason.IMAGE_TOO_LARGE,
            f"HDU {info.index} declares {ny} x {nx} = {info.npix} pixels, over "
            f"intake_helio.max-frame-pixels={settings.max_frame_pixels}; raise it "
            "(dask.config.set({'intake_helio.max-frame-pixels': N})) to read it",
        )


# --------------------------------------------------------------------------- public API
