"""One reader of cutouts and one options object: every spelling, every refusal (no sockets)."""

from __future__ import annotations

import astropy.units as u
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.app.arguments import BadInput
from intake_helio.app.arguments import parse_cutout as cli_cutout
from intake_helio.frames.options import (
    Cutout,
    FrameOptions,
    FramesError,
    frame_options,
    parse_cutout,
)


def test_every_pixel_spelling_is_one_cutout():
    want = Cutout(y=slice(10, 20), x=slice(0, 64))
    assert parse_cutout({"y": slice(10, 20), "x": slice(0, 64)}) == want
    assert parse_cutout({"y": [10, 20], "x": (0, 64)}) == want  # YAML lists
    assert parse_cutout("10:20,0:64") == want  # the command line's text
    assert parse_cutout(want) is want
    assert parse_cutout(None) is None
    assert cli_cutout("10:20,0:64") == {"y": slice(10, 20), "x": slice(0, 64)}
    assert parse_cutout({"y": slice(5, None)}).window((32, 16)) == (slice(5, 32), slice(0, 16))


def test_arcsec_bounds_become_floats_in_order():
    box = parse_cutout({"Tx": slice(-600 * u.arcsec, 0), "Ty": [-5 * u.arcmin, 300]})
    assert box == Cutout(tx=slice(-600.0, 0.0), ty=slice(-300.0, 300.0)) and box.solar
    assert box.plain() == {"Tx": slice(-600.0, 0.0), "Ty": slice(-300.0, 300.0)}
    assert parse_cutout(box.plain()) == box


@pytest.mark.parametrize(
    ("cutout", "match"),
    [
        ({"y": slice(0, 10), "Tx": slice(-600, 0), "Ty": slice(0, 10)}, "cannot be mixed"),
        ({"Tx": slice(-600, 0)}, "needs exactly Tx and Ty"),
        ({"Tx": slice(-600, None), "Ty": slice(0, 1)}, "has an open end"),
        ({"Tx": slice("west", 0), "Ty": slice(0, 1)}, "expected a number of arcsec"),
        ({"Tx": slice(-600 * u.s, 0), "Ty": slice(0, 1)}, "is not an angle"),
        ({"Tx": slice(0, 1), "Ty": slice(2 * u.arcmin, -2 * u.arcmin)}, "runs from 120 to -120"),
        ({"y": slice(0, 10, 2)}, r"cutout\['y'\].*step 1"),
        ({"y": slice("a", 10)}, r"cutout\['y'\].*whole pixel numbers"),
        ({"z": slice(0, 10)}, r"expected dict\(y=slice"),
        ("Tx=-600:0", r"expected dict\(y=slice"),
        (42, r"cutout=42; expected"),
    ],
)
def test_malformed_cutouts_are_refused_by_the_one_reader(cutout, match):
    with pytest.raises(FramesError, match=match) as info:
        parse_cutout(cutout)
    assert isinstance(info.value, ih.HelioError) and isinstance(info.value, ValueError)


def test_a_pixel_window_that_selects_nothing_names_the_axis():
    with pytest.raises(FramesError, match=r"cutout\['y'\]=slice\(100, 200, None\) selects no"):
        parse_cutout({"y": slice(100, 200)}).window((64, 64))


def test_the_command_line_names_its_flag():
    with pytest.raises(BadInput, match=r"--cutout '10:20': expected Y0:Y1,X0:X1"):
        cli_cutout("10:20")


def test_frame_options_checks_everything_once():
    opts = frame_options(header_keys="exptime", chunks={"y": 16, "time": 1}, quality="good")
    assert opts == FrameOptions(header_keys=("EXPTIME",), band_rows=16, quality="good")
    assert frame_options(**opts.arguments()) == opts  # what intake entries store re-creates it
    assert opts.with_(cutout="0:8,0:8").cutout == Cutout(y=slice(0, 8), x=slice(0, 8))
    for bad, match in [
        (dict(units="W"), "units='W'"),
        (dict(on_error="skip"), "on_error='skip'"),
        (dict(chunks={"x": 3}), "chunks="),
        (dict(chunks={"y": 0}), r"chunks\['y'\]=0"),
        (dict(chunks={"time": 5}), r"chunks\['time'\]=5"),
    ]:
        with pytest.raises(ValueError, match=match):
            frame_options(**bad)


def test_open_frames_takes_options_or_keywords_not_both():
    df = pd.DataFrame({"start": [pd.Timestamp("2020-01-01")], "datakey": ["s3://b/f.fits"]})
    with pytest.raises(FramesError, match="got options= and also cutout, units"):
        ih.open_frames(df, options=frame_options(), units="DN/s", cutout={"y": slice(0, 1)})
