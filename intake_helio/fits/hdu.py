"""The HDU walk: parse FITS headers block by block, classify HDUs and find the image HDU.

Headers are read from a :class:`~intake_helio.fits.source._Source` in growing chunks (only
header bytes are fetched), each HDU is classified as an image, a tile-compressed image or
something else (:class:`_HDU`), and its header is offered as astropy sees it (the image
header of a compressed image) or as plain Python values.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from ..base.errors import FrameReadError
from ..base.reasons import Reason
from ..io.shims import bintable_header_to_image_header
from .source import _Source

__all__ = [
    "_BITPIX_DTYPE",
    "_BLOCK",
    "_CARD",
    "_HDU",
    "_classify",
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

_BITPIX_DTYPE = {
    8: np.dtype(np.uint8),
    16: np.dtype(np.int16),
    32: np.dtype(np.int32),
    64: np.dtype(np.int64),
    -32: np.dtype(np.float32),
    -64: np.dtype(np.float64),
}


@dataclass
class _HDU:
    index: int
    header: fits.Header  # raw header (the BINTABLE's for compressed images)
    header_start: int
    data_start: int
    data_size: int  # unpadded
    kind: str  # "image", "compressed" or "other"
    why: str = ""  # for "other": what it is

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


def _read_header(src: _Source, off: int, header_read: int) -> tuple[fits.Header, int] | None:
    """Parse the header starting at ``off``; None at a clean end of the HDU list.

    The first read is ``header_read`` bytes (half of it after the primary header), doubled
    until the END card is found.
    """
    chunk = header_read if off == 0 else header_read // 2
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
                    f"starts with {bytes(data[:20])!r}, not 'SIMPLE  ='",
                )
            if off > 0 and not data.startswith(b"XTENSION="):
                return None  # trailing bytes that are not an extension: astropy ignores them
        buf += data
        end_block = _find_end(buf, scanned)
        if end_block is not None:
            hlen = (end_block + 1) * _BLOCK
            text = buf[:hlen].decode("ascii", errors="replace")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = fits.Header.fromstring(text)
            return header, off + hlen
        scanned = len(buf) // _BLOCK
        if len(data) < chunk:
            raise FrameReadError(
                src.key,
                Reason.TRUNCATED,
                f"the file ends at byte {off + len(buf)} inside the header that starts at {off}",
            )
        chunk *= 2


def _int(header: fits.Header, key: str, default: int | None = None) -> int:
    value = header.get(key, default)
    if value is None:
        raise KeyError(f"header keyword {key} is missing")
    return int(value)


def _classify(index: int, header: fits.Header, hstart: int, dstart: int) -> _HDU:
    primary = index == 0
    bitpix = _int(header, "BITPIX")
    naxis = _int(header, "NAXIS", 0)
    dims = [_int(header, f"NAXIS{i}", 0) for i in range(1, naxis + 1)]
    gcount = _int(header, "GCOUNT", 1)
    pcount = _int(header, "PCOUNT", 0)
    groups = primary and naxis > 0 and dims[0] == 0 and bool(header.get("GROUPS", False))
    if naxis == 0:
        size = 0
    else:
        npix = math.prod(dims[1:]) if groups else math.prod(dims)
        size = abs(bitpix) // 8 * gcount * (pcount + npix)
    xtension = "IMAGE" if primary else str(header.get("XTENSION", "")).strip().upper()
    kind, why = "other", ""
    if xtension == "IMAGE" and not groups:
        if naxis >= 2 and all(d > 0 for d in dims) and all(d == 1 for d in dims[2:]):
            kind = "image"
        else:
            why = f"an image with NAXIS={naxis} and shape {tuple(reversed(dims))}"
    elif xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        znaxis = _int(header, "ZNAXIS", 0)
        zdims = [_int(header, f"ZNAXIS{i}", 0) for i in range(1, znaxis + 1)]
        if znaxis >= 2 and all(d > 0 for d in zdims) and all(d == 1 for d in zdims[2:]):
            kind = "compressed"
        else:
            why = f"a compressed image with ZNAXIS={znaxis} and shape {tuple(reversed(zdims))}"
    else:
        why = "random groups" if groups else f"a {xtension or 'non-standard'} HDU"
    return _HDU(index, header, hstart, dstart, size, kind, why)


def _locate(src: _Source, hdu: int | str, header_read: int) -> _HDU:
    """Walk the HDU headers up to the requested image HDU (see :func:`_read_header`)."""
    off, index, seen = 0, 0, []
    while True:
        got = _read_header(src, off, header_read)
        if got is None:
            break
        header, dstart = got
        try:
            info = _classify(index, header, off, dstart)
        except (KeyError, ValueError, TypeError) as exc:
            reason = Reason.NOT_FITS if index == 0 else Reason.CORRUPT_DATA
            raise FrameReadError(src.key, reason, f"HDU {index} header: {exc}") from exc
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
        f"looked for {wanted} among {index} HDU(s): {'; '.join(seen)}",
    )


# --------------------------------------------------------------------------- header helpers
def _image_header(info: _HDU) -> fits.Header:
    """The image header (for compressed images: astropy's uncompressed image header)."""
    if info.kind != "compressed":
        return info.header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bintable_header_to_image_header(info.header)


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
