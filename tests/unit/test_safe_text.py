"""One sanitiser for text from content (issue 26 item 6): base/text.py ``safe_text``."""

from __future__ import annotations

import pytest

from intake_helio.base.text import safe_text
from intake_helio.catalog.records import display_text
from intake_helio.io.storage import shown

HOSTILE = [
    ("\u202eevil", "?evil"),  # right-to-left override
    ("a\u2066b\u2069c", "a?b?c"),  # bidi isolates
    ("zero\u200bwidth\ufeff", "zero?width?"),  # zero-width space, BOM
    ("\x1b[31mred\x1b[0m", "red"),  # ANSI CSI: dropped whole
    ("\x1b]0;owned\x07title", "title"),  # OSC (window title)
    ("\x9b2Jclear", "clear"),  # C1 CSI
    ("bell\x07nul\x00", "bell?nul?"),
    ("two\nlines\r\tand\u2028more", "two lines  and more"),
    ("nb\u00a0sp", "nb sp"),
    ("\ud800lone", "?lone"),  # a lone surrogate
    ("\ue000private", "?private"),
]


@pytest.mark.parametrize(("raw", "want"), HOSTILE)
def test_hostile_characters_never_survive(raw, want):
    assert safe_text(raw) == want
    for out in (safe_text(raw), shown(raw), display_text(raw)):
        assert out.isprintable()
        assert "\x1b" not in out and "\u202e" not in out


@pytest.mark.parametrize("text", ["AIA 94 Å", "Солнце", "太陽 EUV", "plain ascii 123 !?"])
def test_printable_text_in_any_script_is_unchanged(text):
    assert safe_text(text) == text == shown(text) == display_text(text)


def test_long_text_is_cut_and_work_is_bounded():
    assert safe_text("x" * 500, limit=10) == "xxxxxxx..."
    assert len(safe_text("\u202e" * 10**6, limit=50)) == 50
    assert safe_text(12345) == "12345"


def test_shown_masks_credentials_as_well():
    out = shown("https://user:pw@host/x?token=abc\u202e")
    assert "pw" not in out and "abc" not in out and "\u202e" not in out
