"""Tile-compressed images: the tile layout of a compressed HDU and Rice/GZIP_1 tile decoding.

:func:`_comp_layout` reads the BINTABLE header of a tile-compressed image (TFORMs, tiles,
ZCMPTYPE, ZVALs) and says whether the fast path can decode it; :func:`_comp_bands` decodes
the touched tiles band by band with :func:`imagecodecs.rcomp_decode` (RICE_1) or
:mod:`zlib` (GZIP_1), which release the GIL.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base.errors import HelioError
from .cards import Cards
from .hdu import _BITPIX_DTYPE, _HDU, _count, _int

try:  # imagecodecs is a hard dependency, but keep the module importable without it
    import imagecodecs
except ImportError:  # pragma: no cover - exercised only in broken environments
    imagecodecs = None

__all__ = [
    "_HEAP_ELEM_SIZE",
    "_TFORM_RE",
    "_TFORM_SIZE",
    "_Comp",
    "_TileError",
    "_comp_bands",
    "_comp_layout",
    "_decode_tile",
    "_rice_bands",
    "_zval",
]

_TFORM_RE = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])(.*)\Z")
_TFORM_SIZE = {
    "L": 1,
    "B": 1,
    "I": 2,
    "J": 4,
    "K": 8,
    "A": 1,
    "E": 4,
    "D": 8,
    "C": 8,
    "M": 16,
    "P": 8,
    "Q": 16,
}
_HEAP_ELEM_SIZE = {"B": 1, "I": 2, "J": 4}
#: compressions named in messages (any other is "an unknown compression", never quoted)
_KNOWN_CMPTYPES = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1", "NOCOMPRESS")


class _TileError(HelioError, ValueError):
    """A compressed tile that cannot be decoded (the message gives sizes, never bytes)."""


@dataclass
class _Comp:
    cmptype: str
    zbitpix: int
    ny: int
    nx: int
    th: int
    tw: int
    nty: int
    ntx: int
    row_bytes: int
    nrows: int
    desc_dtype: np.dtype
    elem_size: int
    theap: int
    blocksize: int
    bytepix: int
    unsupported: str = ""  # why the fast path cannot decode it ("" = it can)


def _zval(header: Cards, name: str, default: int) -> int:
    for i in range(1, 1000):
        zname = header.get(f"ZNAME{i}")
        if zname is None:
            break
        if str(zname).strip().upper() == name:
            return _int(header, f"ZVAL{i}", default)
    return default


def _comp_layout(info: _HDU) -> _Comp:
    h = info.header
    cmptype = str(h.get("ZCMPTYPE", "")).strip().upper()
    zbitpix = _int(h, "ZBITPIX")
    ny, nx = _int(h, "ZNAXIS2"), _int(h, "ZNAXIS1")
    tw = min(_int(h, "ZTILE1", nx), nx)
    th = min(_int(h, "ZTILE2", 1), ny)
    nty, ntx = -(-ny // max(th, 1)), -(-nx // max(tw, 1))
    row_bytes, nrows = _int(h, "NAXIS1"), _int(h, "NAXIS2")
    # the reasons it cannot be decoded here name keywords, never the file's text
    why = []
    offset, col_off, desc_char, elem = 0, None, "P", 1
    names = []
    for i in range(1, _count(h, "TFIELDS", 0) + 1):
        name = str(h.get(f"TTYPE{i}", "")).strip().upper()
        tform = str(h.get(f"TFORM{i}", "")).strip().upper()
        names.append(name)
        m = _TFORM_RE.match(tform)
        if not m or len(m.group(1)) > 12:
            why.append(f"unparsable TFORM{i}")
            break
        repeat = int(m.group(1) or 1)
        code = m.group(2)
        if name == "COMPRESSED_DATA":
            if code not in "PQ" or repeat != 1:
                why.append(f"COMPRESSED_DATA is not a P or Q column (TFORM{i})")
            else:
                col_off, desc_char = offset, code
                etype = m.group(3)[:1]
                if etype not in _HEAP_ELEM_SIZE:
                    why.append(f"COMPRESSED_DATA elements are not B, I or J (TFORM{i})")
                elem = _HEAP_ELEM_SIZE.get(etype, 1)
        size = -(-repeat // 8) if code == "X" else repeat * _TFORM_SIZE[code]
        offset += size
    if col_off is None:
        why.append("no COMPRESSED_DATA column")
    extra = set(names) - {"COMPRESSED_DATA"}
    if extra:
        why.append(f"{len(extra)} extra column(s)")
    if cmptype in ("RICE_1", "RICE_ONE"):
        if zbitpix < 0:
            why.append("quantised floating-point pixels")
    elif cmptype != "GZIP_1":
        known = cmptype if cmptype in _KNOWN_CMPTYPES else "an unknown compression"
        why.append(f"compression {known}")
    if zbitpix not in _BITPIX_DTYPE:
        why.append(f"ZBITPIX={zbitpix}")
    bytepix = _zval(h, "BYTEPIX", 4)
    if cmptype.startswith("RICE") and bytepix not in (1, 2, 4):
        why.append(f"RICE BYTEPIX={bytepix}")
    if th < 1 or tw < 1:
        why.append("ZTILE1/ZTILE2 below 1")
    if nrows != nty * ntx:
        why.append(f"{nrows} table rows for {nty}x{ntx} tiles")
    if any(_int(h, f"ZTILE{i}", 1) != 1 for i in range(3, _count(h, "ZNAXIS") + 1)):
        why.append("tiles span more than one plane")
    if "ZBLANK" in h and "BLANK" in h and h["ZBLANK"] != h["BLANK"]:
        why.append("ZBLANK differs from BLANK")
    if h.get("ZQUANTIZ") is not None and zbitpix < 0:
        why.append("quantised floating-point pixels")
    if imagecodecs is None and cmptype.startswith("RICE"):
        why.append("imagecodecs is not installed")
    fmt = ">i4" if desc_char == "P" else ">i8"
    half = 4 if desc_char == "P" else 8
    desc_dtype = np.dtype(
        {
            "names": ["n", "off"],
            "formats": [fmt, fmt],
            "offsets": [col_off or 0, (col_off or 0) + half],
            "itemsize": max(row_bytes, (col_off or 0) + 2 * half),
        }
    )
    return _Comp(
        cmptype=cmptype,
        zbitpix=zbitpix,
        ny=ny,
        nx=nx,
        th=th,
        tw=tw,
        nty=nty,
        ntx=ntx,
        row_bytes=row_bytes,
        nrows=nrows,
        desc_dtype=desc_dtype,
        elem_size=elem,
        theap=_int(h, "THEAP", row_bytes * nrows),
        blocksize=_zval(h, "BLOCKSIZE", 32),
        bytepix=bytepix,
        unsupported="; ".join(why),
    )


def _decode_tile(comp: _Comp, cbuf, npix: int, out: np.ndarray | None) -> np.ndarray:
    """Decode one tile to a 1-D array of the image dtype (into ``out`` if given)."""
    zdtype = _BITPIX_DTYPE[comp.zbitpix]
    if comp.cmptype.startswith("RICE"):
        rdtype = {1: np.dtype(np.uint8), 2: np.dtype(np.int16), 4: np.dtype(np.int32)}[comp.bytepix]
        if rdtype.itemsize == zdtype.itemsize:
            rdtype = zdtype if zdtype.kind in "iu" else rdtype
            if out is not None and out.dtype == rdtype:
                return imagecodecs.rcomp_decode(
                    cbuf, shape=(npix,), dtype=rdtype, nblock=comp.blocksize, out=out
                )
        tile = imagecodecs.rcomp_decode(cbuf, shape=(npix,), dtype=rdtype, nblock=comp.blocksize)
        tile = tile.astype(zdtype, copy=False)
    else:  # GZIP_1: big-endian bytes, never more than 8 per pixel (no "zip bomb")
        inflate = zlib.decompressobj(47)
        raw = inflate.decompress(cbuf, npix * 8 + 1)
        n = len(raw)
        if n > npix * 8:
            raise _TileError(f"a GZIP_1 tile decompressed to more than {npix * 8} bytes")
        if n == npix * 2:
            dt = ">i2"
        elif n == npix * 4:
            dt = ">f4" if comp.zbitpix < 0 else ">i4"
        elif n == npix * 8:
            dt = ">f8" if comp.zbitpix < 0 else ">i8"
        elif n == npix:
            dt = "u1"
        else:
            raise _TileError(f"a GZIP_1 tile decompressed to {n} bytes for {npix} pixels")
        tile = np.frombuffer(raw, dtype=dt).astype(zdtype, copy=False)
    if out is not None:
        out[...] = tile
        return out
    return tile


def _comp_bands(
    comp: _Comp,
    tiles: Sequence[Any],
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    band_pixels: int,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Decode the tiles covering ``[y0:y1, x0:x1]`` in bands of tile rows.

    ``tiles`` holds the compressed bytes of the touched tiles, in row-major tile order; a
    band holds about ``band_pixels`` pixels (at least one tile row).
    Yields ``(band_y0, band_x0, band)``: ``band`` is an array of the image dtype, valid
    only until the next band is decoded into the same buffer.
    """
    th, tw, ny, nx = comp.th, comp.tw, comp.ny, comp.nx
    zdtype = _BITPIX_DTYPE[comp.zbitpix]
    ty0, ty1 = y0 // th, (y1 - 1) // th
    tx0, tx1 = x0 // tw, (x1 - 1) // tw
    bx0, bx1 = tx0 * tw, min(nx, (tx1 + 1) * tw)
    bw = bx1 - bx0
    full_width = tw >= nx  # each tile spans the full width: its rows are contiguous
    per_band = max(1, band_pixels // (th * bw))
    # One buffer for all bands (each band is used before the next is decoded): a fresh
    # array per band is a fresh mmap and page faults in dask workers, whose
    # MALLOC_TRIM_THRESHOLD_ setting pins glibc's mmap threshold at 128 KiB.
    buf = np.empty((min(per_band, ty1 - ty0 + 1) * th, bw), dtype=zdtype)
    if (
        full_width
        and comp.cmptype.startswith("RICE")
        and zdtype.kind in "iu"
        and zdtype.itemsize == comp.bytepix
    ):
        # the common case (AIA): RICE tiles of the image's own integer type, decoded in
        # place; the output slot of every tile in a band is made once
        yield from _rice_bands(comp, tiles, buf, ty0, ty1, per_band)
        return
    i = 0
    for a in range(ty0, ty1 + 1, per_band):
        b = min(ty1, a + per_band - 1)
        by0, by1 = a * th, min(ny, (b + 1) * th)
        band = buf[: by1 - by0]
        for tyi in range(a, b + 1):
            ya, yb = tyi * th, min(ny, (tyi + 1) * th)
            for txi in range(tx0, tx1 + 1):
                xa, xb = txi * tw, min(nx, (txi + 1) * tw)
                npix = (yb - ya) * (xb - xa)
                if full_width:
                    _decode_tile(comp, tiles[i], npix, band[ya - by0 : yb - by0].reshape(-1))
                else:
                    tile = _decode_tile(comp, tiles[i], npix, None)
                    band[ya - by0 : yb - by0, xa - bx0 : xb - bx0] = tile.reshape(yb - ya, xb - xa)
                i += 1
        yield by0, bx0, band


def _rice_bands(
    comp: _Comp, tiles: Sequence[Any], buf: np.ndarray, ty0: int, ty1: int, per_band: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """`_comp_bands` for full-width RICE tiles of the image's integer type."""
    th, ny = comp.th, comp.ny
    decode = imagecodecs.rcomp_decode
    dtype, nblock = buf.dtype, comp.blocksize
    flat = buf.reshape(-1)
    tile_pix = th * buf.shape[1]
    slots = [flat[k * tile_pix : (k + 1) * tile_pix] for k in range(buf.shape[0] // th)]
    shape = (tile_pix,)
    last_full = ny // th - 1  # tile rows past this one are partial (at most one)
    i = 0
    for a in range(ty0, ty1 + 1, per_band):
        b = min(ty1, a + per_band - 1)
        full = min(b, last_full) - a + 1  # tile rows of the band that are whole
        for k in range(full):
            decode(tiles[i + k], shape=shape, dtype=dtype, nblock=nblock, out=slots[k])
        i += full
        if full <= b - a:  # the image's last, partial tile row
            npix = (ny - b * th) * buf.shape[1]
            decode(tiles[i], shape=(npix,), dtype=dtype, nblock=nblock, out=slots[full][:npix])
            i += 1
        yield a * th, 0, buf[: min(ny, (b + 1) * th) - a * th]
