"""Hostile FITS bytes written by hand (astropy refuses to write them): cards, headers that
declare huge images or many HDUs. Used by the tests and ``benchmarks/hostile.py``."""

from __future__ import annotations

from typing import Any

__all__ = ["card", "header", "huge_compressed", "huge_image", "many_hdus", "primary"]


def card(key: str, value: Any = None) -> bytes:
    """One 80-byte header card, written by hand (astropy refuses to write hostile ones)."""
    if value is None:
        text = key
    elif isinstance(value, bool):
        text = f"{key:<8}= {'T' if value else 'F':>20}"
    elif isinstance(value, int | float):
        text = f"{key:<8}= {value:>20}"
    else:
        text = f"{key:<8}= '{value}'"
    return text.ljust(80).encode()


def header(*cards: bytes) -> bytes:
    """The cards, ``END`` and blank padding to a whole 2,880-byte block."""
    raw = b"".join(cards) + card("END")
    return raw + b" " * (-len(raw) % 2880)


def primary(**cards: Any) -> bytes:
    """A primary header with no data (``BITPIX = 8``, ``NAXIS = 0``), ``cards`` overriding."""
    base = {"SIMPLE": True, "BITPIX": 8, "NAXIS": 0}
    return header(*(card(k, v) for k, v in {**base, **cards}.items()))


def huge_image(n: int = 200_000) -> bytes:
    """5,760 bytes that declare an n x n int16 image (80 GB for the default n)."""
    return primary(BITPIX=16, NAXIS=2, NAXIS1=n, NAXIS2=n) + b"\0" * 2880


def huge_compressed(n: int = 200_000) -> bytes:
    """A tile-compressed image of n x n pixels, one row per tile, with a tiny table."""
    ext = header(
        card("XTENSION", "BINTABLE"),
        card("BITPIX", 8),
        card("NAXIS", 2),
        card("NAXIS1", 8),
        card("NAXIS2", n),
        card("PCOUNT", 0),
        card("GCOUNT", 1),
        card("TFIELDS", 1),
        card("TTYPE1", "COMPRESSED_DATA"),
        card("TFORM1", "1PB(10)"),
        card("ZIMAGE", True),
        card("ZBITPIX", 16),
        card("ZNAXIS", 2),
        card("ZNAXIS1", n),
        card("ZNAXIS2", n),
        card("ZTILE1", n),
        card("ZTILE2", 1),
        card("ZCMPTYPE", "RICE_1"),
    )
    return primary(EXTEND=True) + ext + b"\0" * 2880


def many_hdus(n: int, kinds: tuple[str, ...] = ("IMAGE",)) -> bytes:
    """A primary HDU and ``n`` empty extensions (2,880 bytes each), cycling ``kinds``."""
    empty_image = header(
        card("XTENSION", "IMAGE"),
        card("BITPIX", 8),
        card("NAXIS", 0),
        card("PCOUNT", 0),
        card("GCOUNT", 1),
    )
    empty_table = header(
        card("XTENSION", "BINTABLE"),
        card("BITPIX", 8),
        card("NAXIS", 2),
        card("NAXIS1", 0),
        card("NAXIS2", 0),
        card("PCOUNT", 0),
        card("GCOUNT", 1),
        card("TFIELDS", 0),
    )
    blocks = {"IMAGE": empty_image, "BINTABLE": empty_table}
    return primary(EXTEND=True) + b"".join(blocks[kinds[i % len(kinds)]] for i in range(n))
