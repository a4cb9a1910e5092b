"""A FITS file is third-party content: what it declares never makes a read unbounded.

Hostile files built byte by byte (in memory, on local files, through a filesystem that
sends more than asked): declared sizes are refused before anything is allocated, header
walks stop and stay linear, tiles never inflate without bound, every read stops at its
limit, and no message quotes the file's bytes.
"""

from __future__ import annotations

import gzip
import pickle
import time
import tracemalloc
import uuid

import dask
import dask.config
import fsspec
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih
import intake_helio.fits.frame as ff
import intake_helio.fits.tiles as tiles
from intake_helio.base.errors import ArgumentError, FrameReadError
from intake_helio.base.reasons import Reason
from intake_helio.base.settings import current
from intake_helio.fits.source import _few
from intake_helio.fits.stats import frame_stats
from intake_helio.frames.spec import FrameSpec
from intake_helio.io.transport import cat_bounded
from intake_helio.testing.aia import frame_bytes, make_aia_frame
from intake_helio.testing.fits_bytes import (
    card,
    header,
    huge_compressed,
    huge_image,
    many_hdus,
    primary,
)
from tests.builders import SECRET


# ----------------------------------------------------------------------------- builders
def small_frame(size: int = 32, **header_cards) -> bytes:
    hdul = make_aia_frame("2020-01-01T00:00", size=size)
    for k, v in header_cards.items():
        hdul[1].header[k] = v
    return frame_bytes(hdul)


class CountingFS:
    """A filesystem that records every read (duck-typed, like the fakes of test_fits_frames)."""

    def __init__(self, fs, extra: bytes = b""):
        self.fs = fs
        self.extra = extra  # sent after every ranged read: a server that sends more
        self.reads: list[tuple] = []

    def cat_file(self, path, start=None, end=None, **kw):
        data = self.fs.cat_file(path, start=start, end=end)
        self.reads.append((start, end, len(data)))
        return data + (self.extra if start is not None else b"")

    def cat_ranges(self, paths, starts, ends, **kw):
        return [self.cat_file(p, s, e) for p, s, e in zip(paths, starts, ends, strict=True)]

    def unstrip_protocol(self, path):
        return self.fs.unstrip_protocol(path)


@pytest.fixture
def mem():
    fs = fsspec.filesystem("memory")
    root = f"/trust-{uuid.uuid4().hex}"
    yield fs, root
    fs.rm(root, recursive=True)


def put(mem, name: str, raw: bytes) -> str:
    fs, root = mem
    fs.pipe_file(f"{root}/{name}", raw)
    return f"{root}/{name}"


def failure(fn, *args, **kw) -> FrameReadError:
    with pytest.raises(FrameReadError) as info:
        fn(*args, **kw)
    return info.value


# ----------------------------------------------------------------------------- pixels
@pytest.mark.parametrize("build", [huge_image, huge_compressed], ids=["image", "compressed"])
def test_a_declared_80_gb_image_is_refused_before_any_allocation(mem, build):
    raw = build()
    assert len(raw) <= 8640
    path = put(mem, "huge.fits", raw)
    tracemalloc.start()
    try:
        for read in (ff.read_frame, ff.frame_sum, ff.probe_frame):
            err = failure(read, mem[0], path)
            assert err.reason == Reason.IMAGE_TOO_LARGE == "image too large"
            assert "200000 x 200000" in str(err) and "intake_helio.max-frame-pixels" in str(err)
        err = failure(frame_stats, mem[0], path, ["mean", "max"])
        assert err.reason == Reason.IMAGE_TOO_LARGE
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # bytes: headers only, nothing for 4e10 pixels


def test_max_frame_pixels_setting_decides(mem):
    path = put(mem, "small.fits", small_frame(32))
    with dask.config.set({"intake_helio.max-frame-pixels": 32 * 32 - 1}):
        assert failure(ff.read_frame, mem[0], path).reason == Reason.IMAGE_TOO_LARGE
    with dask.config.set({"intake_helio.max-frame-pixels": 32 * 32}):
        assert ff.read_frame(mem[0], path).shape == (32, 32)
    # header-only reads are not refused: they allocate nothing for pixels
    with dask.config.set({"intake_helio.max-frame-pixels": 1}):
        assert ff.read_header_values(mem[0], path, ["NAXIS1"]) == {"NAXIS1": 32}


def test_a_gzip_tile_never_inflates_past_eight_bytes_per_pixel():
    bomb = gzip.compress(b"\0" * 200_000_000)  # 200 MB of zeros in ~200 KB
    comp = tiles._Comp("GZIP_1", 16, 10, 10, 10, 10, 1, 1, 8, 1, np.dtype(np.int64), 1, 0, 32, 4)
    tracemalloc.start()
    try:
        with pytest.raises(tiles._TileError, match="more than 800 bytes"):
            tiles._decode_tile(comp, bomb, 100, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


# ----------------------------------------------------------------------------- HDU walk
def test_twenty_thousand_hdus_stop_at_max_hdus_fast_with_a_short_message(mem):
    path = put(mem, "many.fits", many_hdus(20_000))
    for whole in (True, False):
        t0 = time.perf_counter()
        err = failure(ff.read_frame, mem[0], path, whole_file=whole, rows=slice(0, 1))
        assert time.perf_counter() - t0 < 10
        assert err.reason == Reason.NO_IMAGE_HDU
        assert "first 1000 HDUs" in str(err) and "intake_helio.max-hdus" in str(err)
        assert len(str(err)) < 400


def test_long_lists_in_messages_end_with_how_many_more(mem):
    path = put(mem, "mixed.fits", many_hdus(40, kinds=("IMAGE", "BINTABLE")))
    err = failure(ff.probe_frame, mem[0], path)
    assert err.reason == Reason.NO_IMAGE_HDU
    # 40 runs of HDUs (the primary and the first image are one run): 3 shown
    assert str(err).endswith("... (37 more))") and len(str(err)) < 400
    assert _few(["a", "b"]) == "a; b"
    assert _few(list("abcdef")) == "a; b; c; ... (3 more)"


def test_the_walk_is_linear_its_ranged_reads_grow_geometrically(mem):
    """Walking many small headers with ranged reads: fetches double, so there are few."""
    fs = CountingFS(mem[0])
    path = put(mem, "walk.fits", many_hdus(8000, kinds=("IMAGE", "BINTABLE")))
    with dask.config.set({"intake_helio.max-hdus": 10_000}):
        t0 = time.perf_counter()
        err = failure(ff.probe_frame, fs, path)
        seconds = time.perf_counter() - t0
    assert err.reason == Reason.NO_IMAGE_HDU and "among 8001 HDU(s)" in str(err)
    assert len(fs.reads) <= 16, fs.reads  # log2(8000 x 2880 / 32 KiB) + a few
    assert sum(n for *_, n in fs.reads) <= 2 * 8001 * 2880 + 65536
    assert seconds < 20


def test_a_header_without_end_stops_at_max_header_bytes(mem):
    body = b"".join(card(f"K{i % 10**6:07d}", i) for i in range(60_000))  # 4.8 MB, no END
    path = put(mem, "noend.fits", card("SIMPLE", True) + body)
    fs = CountingFS(mem[0])
    with dask.config.set({"intake_helio.max-header-bytes": 1 << 20}):
        err = failure(ff.probe_frame, fs, path)
    assert err.reason == Reason.CORRUPT_DATA and "intake_helio.max-header-bytes" in str(err)
    assert sum(n for *_, n in fs.reads) <= 1 << 20


@pytest.mark.parametrize(
    ("cards", "reason", "words"),
    [
        ({"NAXIS": 5000}, Reason.NOT_FITS, "NAXIS=5000 is outside 0..999"),
        ({"NAXIS": 2, "NAXIS1": 10, "NAXIS2": -3}, Reason.NOT_FITS, "NAXIS2=-3"),
        ({"NAXIS": 2, "NAXIS1": SECRET, "NAXIS2": 4}, Reason.NOT_FITS, "holds a str"),
        ({"BITPIX": SECRET}, Reason.NOT_FITS, "BITPIX should hold an integer"),
    ],
)
def test_bad_counts_and_values_are_named_never_quoted(mem, cards, reason, words):
    path = put(mem, "bad.fits", primary(**cards) + b"\0" * 2880)
    err = failure(ff.read_frame, mem[0], path)
    assert err.reason == reason and words in str(err)
    assert "root" not in str(err)


def test_a_huge_tfields_count_is_not_walked(mem):
    raw = bytearray(huge_compressed(64))
    at = raw.index(b"TFIELDS =")
    raw[at : at + 80] = card("TFIELDS", 10**12)
    path = put(mem, "tfields.fits", bytes(raw))
    t0 = time.perf_counter()
    err = failure(ff.read_frame, mem[0], path)
    assert time.perf_counter() - t0 < 5
    assert err.reason == Reason.CORRUPT_DATA and "TFIELDS" in str(err)


# ----------------------------------------------------------------------------- messages
def test_not_fits_says_what_was_expected_and_how_much_it_got(mem):
    text = (SECRET + "\n").encode() * 100
    path = put(mem, "passwd", text)
    err = failure(ff.read_frame, mem[0], path)
    assert err.reason == Reason.NOT_FITS
    assert err.detail == f"expected 'SIMPLE  =' in the first 80 bytes; got {len(text)} bytes"
    assert "root" not in str(err)


def test_exptime_and_xtension_text_is_never_quoted(mem):
    path = put(mem, "exptime.fits", small_frame(EXPTIME=SECRET))
    err = failure(ff.read_frame, mem[0], path, units="DN/s")
    assert err.reason == Reason.NO_EXPTIME and "holds a str" in str(err)
    assert "root" not in str(err)

    odd = header(card("XTENSION", SECRET[:60]), card("BITPIX", 8), card("NAXIS", 0))
    path = put(mem, "xtension.fits", primary(EXTEND=True) + odd)
    err = failure(ff.probe_frame, mem[0], path)
    assert err.reason == Reason.NO_IMAGE_HDU and "a non-standard HDU" in str(err)
    assert "root" not in str(err)


def test_decoder_errors_keep_their_type_not_the_text_of_the_file():
    exc = ValueError(f"invalid literal for int(): {SECRET!r}")
    made = ff.as_frame_error("s3://b/k", exc)
    assert made.reason == Reason.INVALID_ARGUMENT and "root" not in str(made)
    assert "ValueError" in made.detail
    io_error = ff.as_frame_error("s3://b/k", OSError(5, "reset by peer\x1b[31m " + "x" * 500))
    assert io_error.reason == Reason.READ_ERROR
    assert "\x1b" not in io_error.detail and len(io_error.detail) <= 210


# ----------------------------------------------------------------------------- bytes
def test_a_ranged_read_never_accepts_more_than_it_asked_for(mem):
    path = put(mem, "more.fits", small_frame(256))  # larger than the 64 KiB header read
    fs = CountingFS(mem[0], extra=b"\0" * 5000)
    err = failure(ff.probe_frame, fs, path)
    assert err.reason == Reason.READ_ERROR
    assert "sent more than those 65536 bytes" in str(err)


def test_whole_reads_stop_at_the_index_filesize_plus_slack(tmp_path):
    raw = small_frame(64)
    local = tmp_path / "f.fits"
    local.write_bytes(raw)
    fs, path = fsspec.filesystem("file"), str(local)
    assert ff.read_frame(fs, path, filesize=len(raw)).shape == (64, 64)
    with dask.config.set({"intake_helio.filesize-slack": 0}):
        assert ff.read_frame(fs, path, filesize=len(raw)).shape == (64, 64)
        err = failure(ff.read_frame, fs, path, filesize=len(raw) - 2880)
        assert err.reason == Reason.READ_ERROR
        assert f"index's filesize {len(raw) - 2880}" in str(err)
        assert "intake_helio.filesize-slack" in str(err)
        # unknown sizes (0, None) are bounded by max-file-bytes only
        assert ff.read_frame(fs, path, filesize=0).shape == (64, 64)
    with dask.config.set({"intake_helio.max-file-bytes": len(raw) - 1}):
        err = failure(ff.read_frame, fs, path)
        assert err.reason == Reason.IMAGE_TOO_LARGE and "max-file-bytes" in str(err)
        # an index that claims a larger file does not lift the cap
        err = failure(ff.read_frame, fs, path, filesize=10 * len(raw))
        assert err.reason == Reason.IMAGE_TOO_LARGE


def test_cutouts_never_read_past_the_limit(mem):
    raw = frame_bytes(fits.HDUList([fits.PrimaryHDU(np.arange(64 * 64, dtype=np.int16))]))
    raw = bytes(raw)
    path = put(mem, "flat.fits", raw)
    fs = CountingFS(mem[0])
    with dask.config.set({"intake_helio.filesize-slack": 0}):
        # the index says the file ends inside the image data: rows past it are not read
        err = failure(ff.read_frame, fs, path, rows=slice(0, 2), filesize=2880 + 1000)
    assert err.reason == Reason.READ_ERROR
    # (one byte past the limit is read: it tells whether the file goes on)
    assert all(end is None or end <= 2880 + 1000 + 1 for _, end, _ in fs.reads), fs.reads


def test_cat_bounded_reads_at_most_limit_plus_one_byte(tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(b"x" * 1_000_000)
    fs = fsspec.filesystem("file")
    body = cat_bounded(fs, str(local), limit=1000)
    assert (len(body.data), body.more, body.ranged) == (1000, True, True)
    body = cat_bounded(fs, str(local), limit=2_000_000)
    assert (len(body.data), body.more) == (1_000_000, False)
    body = cat_bounded(fs, str(local), 10, 20, limit=10)
    assert (body.data, body.more) == (b"x" * 10, False)


# ----------------------------------------------------------------------------- frames
def test_frame_spec_carries_filesizes_and_stays_cheap_for_dask():
    n = 50_000
    keys = tuple(f"s3://b/k{i}.fits" for i in range(n))
    sizes = tuple(range(1, n + 1))
    full = slice(0, 8)
    spec = FrameSpec(keys, {}, 1, full, full, "DN", (8, 8), current(), sizes)
    assert spec.filesize("s3://b/k0.fits") == 1 and spec.filesize("nope") is None
    assert spec.datakeys == keys and spec.filesizes == sizes
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.filesize(keys[-1]) == n
    assert FrameSpec(keys[:2], {}, 1, full, full, "DN", (8, 8), current()).filesize(keys[0]) is None
    with pytest.raises(ArgumentError, match="one per datakey"):
        FrameSpec(keys[:2], {}, 1, full, full, "DN", (8, 8), current(), (1,))
    # dask does not walk the per-frame tuples of a spec given to a task
    t0 = time.perf_counter()
    for i in range(20):
        dask.delayed(len, pure=True)(spec, dask_key_name=f"spec-{i}")
    assert time.perf_counter() - t0 < 1


def test_an_odd_first_frame_does_not_set_the_shape(mem):
    fs, root = mem
    good = small_frame(32)
    files = {"a.fits": small_frame(16), **{f"{c}.fits": good for c in "bcd"}}
    for name, raw in files.items():
        fs.pipe_file(f"{root}/{name}", raw)
    df = pd.DataFrame(
        {
            "start": pd.date_range("2020-01-01", periods=4, freq="1min"),
            "datakey": [f"memory://{root}/{n}" for n in files],
            "filesize": [len(r) for r in files.values()],
        }
    )
    frames = ih.open_frames(df, on_error="nan")
    assert frames.shape == (4, 32, 32)
    status = frames["read_status"].compute(scheduler="sync")
    assert list(status.values) == ["shape mismatch", "ok", "ok", "ok"]
    huge = df.copy()
    fs.pipe_file(f"{root}/a.fits", huge_compressed())  # in HDU 1, like the others
    huge.loc[0, "filesize"] = len(huge_compressed())
    frames = ih.open_frames(huge, on_error="nan")
    status = frames["read_status"].compute(scheduler="sync")
    assert list(status.values) == ["image too large", "ok", "ok", "ok"]
    with pytest.raises(FrameReadError, match="image too large"):
        ih.open_frames(huge, on_error="raise")  # the first frame's error, as before
