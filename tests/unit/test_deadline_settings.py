"""The request deadline without sockets: settings, the value, its error and who retries it."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import time
from pathlib import Path

import dask
import pytest
import yaml

import intake_helio as ih
from intake_helio.base import settings as settings_module
from intake_helio.base.errors import ArgumentError, ReadDeadlineError
from intake_helio.base.settings import (
    CatalogSettings,
    Settings,
    SettingsError,
    catalog_settings,
    current,
)
from intake_helio.catalog.fetch import StorageTimeoutError, storage_error
from intake_helio.fits.frame import as_frame_error, frame_error_reason
from intake_helio.io.deadline import RequestClock, deadline_error, read_body
from intake_helio.io.retry import is_transient, retry_io
from intake_helio.io.transport import Deadline


def test_defaults_are_64_kib_per_second_after_60_s():
    for settings in (current().catalog, catalog_settings()):
        assert (settings.min_rate, settings.allowance) == (65536, 60.0)
        assert Deadline.from_settings(settings) == Deadline(60.0, 65536.0)
    assert Deadline.current() == Deadline(60, 65536)
    assert Deadline.current().seconds(2**20) == 60 + 16


def test_defaults_live_in_settings_yaml_only():
    # no record or deadline carries a default of its own: each value comes from the YAML
    for cls in (Settings, CatalogSettings, Deadline):
        with_default = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ]
        assert with_default == [], cls
    yaml_defaults = yaml.safe_load(
        (Path(settings_module.__file__).with_name("settings.yaml")).read_text()
    )["intake_helio"]
    s = current()
    assert s.part_size == yaml_defaults["part-size"]
    assert s.catalog.max_redirects == yaml_defaults["url-policy"]["max-redirects"]
    with dask.config.set({"intake_helio.url-policy.max-redirects": 2}):
        assert current().catalog.max_redirects == 2


@pytest.mark.parametrize(
    "value, expected", [(1000, 1000), ("64 kB", 64_000), ("64 KiB", 65536), ("1 MB", 10**6)]
)
def test_min_rate_takes_bytes_or_a_size(value, expected):
    with dask.config.set({"intake_helio.timeouts.min-rate": value}):
        assert current().catalog.min_rate == expected
        assert catalog_settings().min_rate == expected
        assert Deadline.current().min_rate == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("timeouts.min-rate", 0),
        ("timeouts.min-rate", -5),
        ("timeouts.min-rate", "fast"),
        ("timeouts.min-rate", True),
        ("timeouts.allowance", 0),
        ("timeouts.allowance", -1),
        ("timeouts.allowance", "1 minute"),
        ("timeouts.allowance", None),
    ],
)
def test_bad_values_name_the_key(key, value):
    with dask.config.set({f"intake_helio.{key}": value}):
        for read in (current, catalog_settings, Deadline.current):
            with pytest.raises(SettingsError, match=rf"intake_helio\.{key}={value!r}"):
                read()


@pytest.mark.parametrize("allowance, min_rate", [(0, 1), (1, 0), (-1, 1), (float("inf"), 1)])
def test_a_deadline_needs_positive_finite_values(allowance, min_rate):
    with pytest.raises(ArgumentError, match="Deadline"):
        Deadline(allowance, min_rate)


def test_a_deadline_and_its_error_pickle():
    d = Deadline(2.5, 1000)
    assert pickle.loads(pickle.dumps(d)) == d
    err = deadline_error(d, 2.6, 2)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ReadDeadlineError and str(back) == str(err)
    assert (back.elapsed, back.received, back.allowance, back.min_rate) == (2.6, 2, 2.5, 1000)
    assert isinstance(back, ih.HelioError) and isinstance(back, TimeoutError)
    assert ih.ReadDeadlineError is ReadDeadlineError and "ReadDeadlineError" in ih.__all__


def test_the_message_names_the_settings_and_fits_a_frame_detail():
    msg = str(deadline_error(Deadline(60, 65536), 61.2, 3))
    assert msg == (
        "no complete response in 61.2 s (3 bytes; deadline: intake_helio.timeouts.allowance=60 s "
        "+ bytes / timeouts.min-rate=65536 B/s); the server is too slow: retry later or lower "
        "min-rate"
    )
    long = deadline_error(Deadline(60, 65536), 1234.5, 0, expected=2**31 - 1)
    assert "a 2147483647-byte body" in str(long) and len(str(long)) <= 200


def test_a_deadline_error_is_not_retried():
    err = deadline_error(Deadline(1, 1), 1.5, 0)
    assert is_transient(err) is False
    assert is_transient(TimeoutError("a read timeout")) is True  # the control
    calls = []

    def late():
        calls.append(1)
        raise err

    with pytest.raises(ReadDeadlineError):
        retry_io(late, attempts=4, base_delay=0)
    assert len(calls) == 1


def test_a_frame_past_its_deadline_is_a_read_error_with_the_message():
    err = deadline_error(Deadline(2, 1000), 2.0, 2)
    assert frame_error_reason(err) == ih.Reason.READ_ERROR
    frame = as_frame_error("s3://b/f.fits", err)
    assert frame.reason == "read error" and frame.detail == str(err)


def test_a_catalog_past_its_deadline_names_the_masked_url():
    err = deadline_error(Deadline(2, 1000), 2.04, 2)
    wrapped = RuntimeError("transport")
    wrapped.__cause__ = err
    for exc in (err, wrapped):
        out = storage_error(exc, "https://user:pw@example.org/b/catalog.json", "bucket catalog")
        assert isinstance(out, StorageTimeoutError) and isinstance(out, TimeoutError)
        text = str(out)
        assert text.startswith(
            "bucket catalog https://***@example.org/b/catalog.json did not complete within its "
            "deadline: 2 bytes in 2.0 s, where intake_helio.timeouts.allowance=2 s plus its "
            "bytes at timeouts.min-rate=1000 bytes/s were allowed"
        ), text
        assert "pw" not in text and "lower timeouts.min-rate" in text


# ----------------------------------------------------------------------------- the clock
def _stream(pieces: list[tuple[float, bytes]]) -> tuple[asyncio.StreamReader, asyncio.Task]:
    """A real asyncio stream fed ``(after_seconds, data)`` pieces, then ended."""
    reader = asyncio.StreamReader()

    async def feed():
        for delay, data in pieces:
            await asyncio.sleep(delay)
            reader.feed_data(data)
        reader.feed_eof()

    return reader, asyncio.ensure_future(feed())


async def _read(pieces, deadline: Deadline, limit: int = 10**6):
    reader, feeder = _stream(pieces)
    t0 = time.monotonic()
    try:
        async with RequestClock(deadline) as clock:
            got = await read_body(reader.read, None, limit, clock)
    except ReadDeadlineError as exc:
        return exc, time.monotonic() - t0
    finally:
        feeder.cancel()
    return got, time.monotonic() - t0


def test_a_trickle_is_cut_off_after_the_allowance():
    """One byte every 0.2 s: under 10 bytes/s, so 0.5 s + 0.1 s per byte is passed soon."""
    out, seconds = asyncio.run(_read([(0.2, b"x")] * 20, Deadline(0.5, 10)))
    assert isinstance(out, ReadDeadlineError), out
    assert 0.5 <= seconds < 0.9, seconds
    assert out.received in (2, 3, 4) and isinstance(out.__cause__, TimeoutError)


def test_a_steady_stream_above_the_rate_is_not_cut_off():
    """1 KB every 0.1 s (10 KB/s) for 1 s, twice the 0.5 s allowance, at a min-rate of 2 KB/s."""
    out, seconds = asyncio.run(_read([(0.1, b"x" * 1000)] * 10, Deadline(0.5, 2000)))
    assert out == (b"x" * 10_000, False)
    assert 0.9 <= seconds < 1.5


def test_no_body_within_the_allowance_is_cut_off():
    out, seconds = asyncio.run(_read([(5, b"late")], Deadline(0.3, 1000)))
    assert isinstance(out, ReadDeadlineError) and out.received == 0
    assert 0.3 <= seconds < 0.6


def test_a_snapshot_keeps_the_values_it_was_taken_with():
    """The two settings travel with frame tasks inside a Settings snapshot."""
    config = {"intake_helio.timeouts.allowance": 7, "intake_helio.timeouts.min-rate": 9}
    with dask.config.set(config):
        snap = current()
    assert Deadline.from_settings(snap.catalog) == Deadline(7, 9)
    assert Deadline.from_settings(pickle.loads(pickle.dumps(snap)).catalog) == Deadline(7, 9)
    assert current().catalog.allowance == 60.0
