"""The one sanitiser for text that comes from content (catalogs, indexes, headers, servers).

Titles, descriptions, ids, URLs and error texts written by third parties reach reprs,
messages and terminal lines. :func:`safe_text` makes any of them safe to show: terminal
escape sequences (ANSI CSI/OSC, C1 controls) are dropped whole, every other control
character and every *format* character (the bidi overrides and isolates U+202A-U+202E and
U+2066-U+2069, zero-width characters, the BOM), line and paragraph separators, surrogates,
private-use and unassigned code points become ``?``; tabs, newlines and other spaces
become a space; the text is cut to ``limit`` characters. Printable text (any script) is unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["as_text", "safe_text"]

# ESC [ ... final (CSI), ESC ] ... BEL / ST (OSC), ESC + one char; the C1 CSI (U+009B) form
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)


def safe_text(value: Any, limit: int = 200, replacement: str = "?") -> str:
    """``value`` as one line of printable text, at most ``limit`` characters.

    Parameters
    ----------
    value : Any
        Text from content (anything else is shown with ``str``).
    limit : int
        Longest result; longer text ends with ``...``.
    replacement : str
        What an unprintable character becomes.

    Returns
    -------
    str
    """
    text = value if isinstance(value, str) else str(value)
    text = text[: 4 * limit + 64]  # bounded work for huge fields
    if not (text.isascii() and text.isprintable()):
        text = _ESCAPES.sub("", text)
        text = "".join(
            c if c.isprintable() else (" " if c.isspace() else replacement) for c in text
        )
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def as_text(values: Any) -> np.ndarray:
    """``values`` as an object array of ``str`` (variable-length text, as netCDF and Zarr
    store it), of the same shape.

    Not through numpy's fixed-width ``<U`` (``astype(str)``): for a mission's 1.5 million
    datakeys that is 4 bytes a character, ~0.6 GB at once. A ``str`` element stays the same
    object (no copy); others become ``str(value)``.
    """
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    out.reshape(-1)[:] = [v if type(v) is str else str(v) for v in arr.reshape(-1).tolist()]
    return out
