"""A header read per keyword: the values the reader needs, without parsing every card.

``astropy.io.fits.Header.fromstring`` makes a ``Card`` of every card and each value look-up
parses its card again through astropy's configuration: ~0.3 ms for an AIA-sized header
plus ~15 us per value, which measured ~1 ms of the ~1.7 ms a small frame costs a worker
(``benchmarks/year.py``: a year of small frames is bound by this per-frame cost). The
reader needs ~25 values of one header per frame, so :class:`Cards` finds each card by its
keyword and parses only the values asked for.

Values in the common forms (integer, fixed or exponent float, logical, a quoted string) are
read here, exactly as astropy reads them (``tests/unit/test_cards.py`` compares both over
many card images); any other card is parsed by astropy's ``Card``. A header with a card
astropy reads differently from its neighbours (``CONTINUE`` long strings, ``HIERARCH``,
record-valued cards, a keyword that is not standard, a value without ``"= "``) is handed
to astropy whole. :attr:`Cards.astropy` is the full ``astropy.io.fits.Header``, made when
first asked for (image headers of compressed images, WCS, a frame's header dict).
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

from astropy.io import fits

__all__ = ["Cards"]

_CARD = 80
_COMMENTARY = frozenset(("COMMENT", "HISTORY", ""))
_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
# the value field (columns 11-80) of the forms read here; anything else goes to astropy
_COMMENT = r" *(?:/.*)?"
_INT = re.compile(r" *([+-]?[0-9]+)" + _COMMENT)
_FLOAT = re.compile(r" *([+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?)" + _COMMENT)
_BOOL = re.compile(r" *([TF])" + _COMMENT)
_STRING = re.compile(r" *'((?:[ -&(-~]|'')*)'" + _COMMENT)
# astropy's record-valued keyword cards: DP1 = 'AXIS.1: 1' (the keyword becomes DP1.AXIS.1),
# or DP1 = 'NAXES: 2' (the value becomes 2.0); any string that starts so goes to astropy
_RVKC = re.compile(r" *'\s*[a-zA-Z_]\w*(?:\.(?:\w+|\*))*\s*:")


class Cards:
    """A FITS header's cards, each value parsed when first looked up.

    Parameters
    ----------
    text : str
        The header: whole 80-character cards, up to and including its ``END`` card.

    Notes
    -----
    Look-ups follow ``astropy.io.fits.Header``: keywords are case-insensitive, the first
    of repeated keywords wins, strings lose trailing blanks (astropy's
    ``strip_header_whitespace``). ``COMMENT``, ``HISTORY``, blank and long (``HIERARCH``)
    keywords are looked up in :attr:`astropy`.
    """

    __slots__ = ("_astropy", "_pos", "_strip", "_values", "text")

    def __init__(self, text: str):
        self.text = text
        self._values: dict[str, Any] = {}
        self._astropy: fits.Header | None = None
        self._pos = _index(text)
        self._strip = bool(fits.conf.strip_header_whitespace) if self._pos is not None else True

    @property
    def astropy(self) -> fits.Header:
        """The whole header as ``astropy.io.fits.Header`` (made once, when first asked)."""
        if self._astropy is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._astropy = fits.Header.fromstring(self.text)
        return self._astropy

    def __getitem__(self, key: str) -> Any:
        key = key.upper()
        pos = self._pos
        if pos is None or key in _COMMENTARY or len(key) > 8:
            return self.astropy[key]
        try:
            return self._values[key]
        except KeyError:
            pass
        at = pos[key]  # KeyError: no such card, as astropy
        value = self._values[key] = self._parse(self.text[at : at + _CARD])
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the header has no such card."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = key.upper()
        if self._pos is None or key in _COMMENTARY or len(key) > 8:
            return key in self.astropy
        return key in self._pos

    def __repr__(self) -> str:
        return f"<Cards: {len(self.text) // _CARD} card slots>"

    def _parse(self, image: str) -> Any:
        field = image[10:]
        m = _INT.fullmatch(field)
        if m:
            return int(m.group(1))
        m = _FLOAT.fullmatch(field)
        if m:
            value = float(m.group(1))
            if math.isfinite(value):
                return value
        m = _BOOL.fullmatch(field)
        if m:
            return m.group(1) == "T"
        m = _STRING.fullmatch(field)
        if m:
            value = m.group(1).replace("''", "'")
            return value.rstrip() if self._strip else value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fits.Card.fromstring(image).value
        return None if isinstance(value, fits.card.Undefined) else value  # as Header does


def _index(text: str) -> dict[str, int] | None:
    """Offset of the first card of each keyword; None when astropy must read it whole."""
    pos: dict[str, int] = {}
    for at in range(0, len(text) - _CARD + 1, _CARD):
        key = text[at : at + 8].rstrip()
        if key == "END" and not text[at + 3 : at + _CARD].strip():
            break
        if key in _COMMENTARY:
            continue
        if (
            key == "CONTINUE"
            or text[at + 8 : at + 10] != "= "
            or not _KEYWORD.fullmatch(key)
            or (":" in text[at + 10 : at + _CARD] and _RVKC.match(text, at + 10, at + _CARD))
        ):
            return None
        if key not in pos:
            pos[key] = at
    return pos
