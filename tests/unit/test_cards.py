"""fits.cards.Cards reads every value exactly as astropy's Header does.

Each case is a header text; every keyword of it is looked up in both
(``Cards(text).get(k)`` and ``fits.Header.fromstring(text).get(k)``), with the value and
its type compared, and so are keywords the header lacks.
"""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from intake_helio.fits.cards import Cards
from intake_helio.testing.aia import frame_bytes, make_aia_frame


def _text(cards: list[str]) -> str:
    text = "".join(c.ljust(80)[:80] for c in cards) + "END".ljust(80)
    return text + " " * (-len(text) % 2880)


def _card(key: str, field: str) -> str:
    return f"{key:<8}= {field}"


def _astropy(text: str) -> fits.Header:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.Header.fromstring(text)


def _same(text: str, extra: tuple[str, ...] = ("NOPE", "NAXIS9", "ZNAME99")) -> Cards:
    cards, ref = Cards(text), _astropy(text)
    keys = {k for k in ref if k not in ("COMMENT", "HISTORY", "")} | set(extra)
    assert keys, "a case with no keyword tests nothing"
    for key in sorted(keys):
        for asked in (key, key.lower()):
            try:
                # as astropy reads the keyword in capitals (its record-valued cards read
                # differently when asked in lower case: DP1 -> 'NAXES: 2', dp1 -> 2.0)
                want = ref.get(key)
            except Exception as exc:  # astropy cannot read it: neither can we
                with pytest.raises(type(exc)):
                    cards.get(asked)
                continue
            got = cards.get(asked)
            assert type(got) is type(want), (key, got, want)
            if isinstance(want, float) and np.isnan(want):
                assert np.isnan(got)
            else:
                assert got == want, (key, got, want)
            assert (asked in cards) == (key in ref)
    return cards


FIELDS = [
    # integers
    "                   1",
    "  -32768 / BLANK",
    "+5",
    "0005",
    "-0",
    "12345678901234567890123",
    "1 2",
    # floats
    "1.0",
    "1.",
    ".5",
    "+.5",
    "-1.5E-3",
    "1e5",
    "1.5D3",
    "1.0E+999",
    "  2.9 / [s] exposure time",
    "1.0/no space before the comment",
    # logicals
    "T",
    "                   F / comment",
    "t",
    # strings
    "'BINTABLE'           / binary table extension",
    "'RICE_1  '",
    "'  leading'",
    "''",
    "''''",
    "'O''HARA  ' / c",
    "'no end",
    "'abc'def'",
    "'1PB(59) '",
    "'ends with &'",
    # other forms astropy reads: complex, undefined, junk
    "(1, 2)",
    "(1.5, -2.0)",
    "",
    "  / only a comment",
    "abc",
    "1.0.0",
]


@pytest.mark.parametrize("field", FIELDS)
def test_each_value_form_reads_as_astropy_reads_it(field):
    assert _same(_text([_card("A", field), _card("B", "1")]))._pos is not None


def test_random_cards_read_as_astropy_reads_them():
    rng = random.Random(0)
    alphabet = "0123456789+-.eEdDTF '/ ()&:abcXYZ"
    for _ in range(400):
        cards = []
        for i in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                field = rng.choice(FIELDS)
            else:
                field = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            cards.append(_card(f"K{i}", field))
        _same(_text(cards))


def test_repeated_keywords_read_the_first_as_astropy_does():
    _same(_text([_card("A", "1"), _card("A", "2"), _card("B", "'x'"), _card("B", "'y'")]))


def test_headers_astropy_reads_differently_are_read_by_astropy_whole():
    long_string = [_card("LONG", "'abc&'"), "CONTINUE  'def&'", "CONTINUE  'ghi'"]
    rvkc = [_card("DP1", "'NAXES: 2'"), _card("DP1", "'AXIS.1: 1'"), _card("DP1", "'AXIS.2: 2'")]
    hierarch = ["HIERARCH ESO DET CHIP = 'x'", _card("A", "1")]
    for cards in (long_string, rvkc, hierarch, [_card("abc", "1")], ["A       1", _card("B", "2")]):
        text = _text(cards)
        parsed = _same(text, extra=("NOPE", "A", "LONG", "DP1", "DP1.AXIS.1", "ABC"))
        assert parsed._pos is None  # the whole header went to astropy
    assert Cards(_text(long_string)).get("LONG") == "abcdefghi"


def test_commentary_and_long_keywords_go_to_astropy():
    text = _text(["COMMENT one", "HISTORY two", "COMMENT three", _card("A", "1")])
    cards = _same(text)
    assert cards._pos is not None
    assert list(cards.get("COMMENT")) == ["one", "three"]
    assert cards.get("ESO DET CHIP") is None


def test_the_cards_after_end_are_not_read():
    text = _text([_card("A", "1")])
    text = text[:160] + _card("B", "2").ljust(80) + text[240:]
    assert Cards(text).get("B") is None and _astropy(text).get("B") is None


def test_astropy_strings_keep_trailing_blanks_when_astropy_is_told_to():
    text = _text([_card("S", "'RICE_1  '")])
    with fits.conf.set_temp("strip_header_whitespace", False):
        assert Cards(text).get("S") == _astropy(text).get("S") == "RICE_1  "


@pytest.mark.parametrize("size", [32, 64])
def test_the_headers_of_synthetic_aia_frames_read_as_astropy_reads_them(size):
    raw = frame_bytes(make_aia_frame(pd.Timestamp("2020-01-01"), size=size, seed=3))
    with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
        for hdu in hdul:
            cards = _same(hdu.header.tostring())
            assert cards._pos is not None
