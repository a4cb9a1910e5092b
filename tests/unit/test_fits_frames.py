"""Reading one FITS frame: fast tile decoding, cutouts, sums, headers and failures.

Every file is written by astropy (in ``memory://`` or ``tmp_path``) and every result is
compared with what astropy itself reads from the same bytes.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import pickle
import uuid
import warnings

import dask.config
import fsspec
import numpy as np
import pytest
from astropy.io import fits

import intake_helio.fits.frame as ff
import intake_helio.fits.pixels as fpix
import intake_helio.io.retry as retry
import intake_helio.io.shims as shims
import intake_helio.io.transport.bounded as bounded
from intake_helio.base.errors import FrameReadError, HelioError
from intake_helio.base.options import OptionError
from intake_helio.base.reasons import Reason
from intake_helio.base.settings import current
from tests.builders import CountingFS, quiet_bytes

RNG = np.random.default_rng(20200217)
EXPTIME = 2.9


# ----------------------------------------------------------------------------- helpers
class FlakyFS(CountingFS):
    """Raises ``exc`` on the first ``failures`` reads, then reads for real."""

    def __init__(self, fs, failures: int, exc: BaseException):
        super().__init__(fs)
        self.failures = failures
        self.exc = exc
        self.calls = 0

    def _maybe_fail(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc

    def cat_file(self, path, start=None, end=None, **kw):
        self._maybe_fail()
        return super().cat_file(path, start=start, end=end, **kw)

    def cat_ranges(self, paths, starts, ends, **kw):
        self._maybe_fail()
        return super().cat_ranges(paths, starts, ends, **kw)


@pytest.fixture
def mem():
    """A memory:// filesystem and a unique folder in it, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/fits-frames-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(autouse=True)
def _fast_retries():
    with dask.config.set({"intake_helio.retry.base-delay": 0.001}):
        yield


def put(mem, name: str, raw: bytes) -> str:
    fs, root = mem
    path = f"{root}/{name}"
    fs.pipe_file(path, raw)
    return path


def astropy_data(raw: bytes, hdu: int) -> np.ndarray:
    """What astropy reads, as float32 with BLANK as NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdul:
            data = hdul[hdu].data
            if data.dtype.kind in "iu" and "BLANK" in hdul[hdu].header:
                data = np.where(data == hdul[hdu].header["BLANK"], np.nan, data)
            return np.asarray(data, dtype=np.float32)


def aia_like(ny=128, nx=100, blanks=True) -> np.ndarray:
    data = RNG.poisson(100, (ny, nx)).astype(np.int16)
    if blanks:
        data[3, :7] = -32768
        data[ny // 2, nx // 2] = -32768
        data[-1, -5:] = -32768
    return data


def image_header(**extra) -> fits.Header:
    h = fits.Header()
    h["BLANK"] = -32768
    h["EXPTIME"] = EXPTIME
    h["T_OBS"] = "2020-02-17T00:00:01.57Z"
    h["WAVELNTH"] = 94
    for k, v in extra.items():
        h[k] = v
    return h


def compressed(data, compression="RICE_1", tile_shape=None, header=None, **kw) -> bytes:
    hdu = fits.CompImageHDU(
        data,
        header=image_header() if header is None else header,
        compression_type=compression,
        tile_shape=tile_shape,
        **kw,
    )
    return quiet_bytes(fits.HDUList([fits.PrimaryHDU(), hdu]))


# ----------------------------------------------------------------------------- the frames
def _cases():
    a = aia_like()
    scaled = fits.Header([("BLANK", -32768), ("BSCALE", 0.25), ("BZERO", 10.0), ("EXPTIME", 2.0)])
    plain = fits.Header([("EXPTIME", 1.0)])
    return {
        # name: (bytes, image HDU, decoded by the fast path?)
        "rice_rows": (compressed(a), 1, True),
        "rice_whole_tile": (compressed(a, tile_shape=(128, 100)), 1, True),
        "rice_odd_tiles": (compressed(a, tile_shape=(50, 30)), 1, True),
        # full-width tiles of 7 rows: 128 rows end in a partial tile row of 2
        "rice_row_bands": (compressed(a, tile_shape=(7, 100)), 1, True),
        "rice_int32_row_bands": (
            compressed(RNG.poisson(1e6, (64, 48)).astype(np.int32), tile_shape=(5, 48)),
            1,
            True,
        ),
        "rice_int32": (
            compressed(RNG.poisson(1e6, (64, 48)).astype(np.int32), header=plain),
            1,
            True,
        ),
        "rice_uint8": (
            compressed(RNG.poisson(50, (64, 48)).astype(np.uint8), header=plain),
            1,
            True,
        ),
        "gzip1": (compressed(a, "GZIP_1", tile_shape=(30, 50)), 1, True),
        "gzip1_lossless_float": (
            compressed(RNG.normal(size=(64, 80)).astype(np.float32), "GZIP_1", quantize_level=0),
            1,
            True,
        ),
        "rice_scaled": (compressed(a, header=scaled), 1, True),
        "float64_primary": (
            quiet_bytes(fits.HDUList([fits.PrimaryHDU(RNG.normal(100, 5, (128, 128)))])),
            0,
            True,
        ),
        "int16_bscale_bzero": (
            quiet_bytes(fits.HDUList([fits.PrimaryHDU(a.copy(), scaled)])),
            0,
            True,
        ),
        # not decoded by the fast path: astropy does it
        "rice_quantized_float": (compressed(a.astype(np.float32) * 1.5 + 0.1), 1, False),
        "hcompress": (compressed(a, "HCOMPRESS_1", tile_shape=(32, 50)), 1, False),
        "gzip2": (compressed(a, "GZIP_2"), 1, False),
    }


CASES = _cases()


@pytest.fixture(params=sorted(CASES))
def frame(request, mem, monkeypatch):
    """(fs, path, raw bytes, hdu index, fast) for each kind of frame.

    For frames the fast path must decode, astropy's decoder is made to fail so that a
    silent fallback would be caught; for the others, the fallback is counted.
    """
    raw, hdu, fast = CASES[request.param]
    path = put(mem, f"{request.param}.fits", raw)
    calls = []
    real = fpix._astropy_pixels

    def spy(*args, **kwargs):
        calls.append(1)
        if fast:
            raise AssertionError("the fast path fell back to astropy")
        return real(*args, **kwargs)

    monkeypatch.setattr(fpix, "_astropy_pixels", spy)
    yield mem[0], path, raw, hdu, fast
    if not fast:
        assert calls, "an unsupported compression did not go through astropy"


# ----------------------------------------------------------------------------- correctness
def test_read_frame_matches_astropy(frame):
    fs, path, raw, hdu, _ = frame
    got = ff.read_frame(fs, path)
    want = astropy_data(raw, hdu)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize(
    ("rows", "cols"),
    [
        (slice(10, 40), slice(5, 77)),
        (slice(None, 1), None),
        (None, slice(-13, None)),
        (slice(45, 1000), slice(-1000, 31)),  # clipped to the frame
        (slice(0, 128), slice(0, 100)),
    ],
)
def test_cutout_equals_slice_of_full_frame(frame, rows, cols):
    fs, path, _, _, _ = frame
    full = ff.read_frame(fs, path)
    cut = ff.read_frame(fs, path, rows=rows, cols=cols)
    want = full[rows or slice(None), cols or slice(None)]
    assert cut.shape == want.shape
    np.testing.assert_array_equal(cut, want)


def test_frame_sum_mean_equals_nanmean(frame):
    fs, path, _, _, _ = frame
    full = ff.read_frame(fs, path)
    total, count = ff.frame_sum(fs, path)
    assert isinstance(total, float) and isinstance(count, int)
    assert count == np.count_nonzero(~np.isnan(full))
    np.testing.assert_allclose(total / count, np.nanmean(full, dtype=np.float64), rtol=1e-6)
    total_c, count_c = ff.frame_sum(fs, path, rows=slice(7, 33), cols=slice(2, 41))
    cut = full[7:33, 2:41]
    assert count_c == np.count_nonzero(~np.isnan(cut))
    np.testing.assert_allclose(total_c / count_c, np.nanmean(cut, dtype=np.float64), rtol=1e-6)


def test_small_bands_give_the_same_results(frame, monkeypatch):
    """Frames are decoded in bands of tile rows: force many bands on these small frames."""
    fs, path, raw, hdu, fast = frame
    sizes = []
    real_sub = fpix._sub

    def spy(pix, by0, bx0, band):
        sizes.append(band.size)
        return real_sub(pix, by0, bx0, band)

    monkeypatch.setattr(fpix, "_sub", spy)
    info = ff.probe_frame(fs, path)
    tile_row = (info.tile_shape[0] if info.tile_shape else 1) * info.shape[1]
    want = astropy_data(raw, hdu)
    with dask.config.set({"intake_helio.band-pixels": 700}):
        np.testing.assert_allclose(ff.read_frame(fs, path), want, rtol=1e-6, equal_nan=True)
        if fast:  # the setting reached the decoders: no band is larger than it needs to be
            assert max(sizes) <= max(700, tile_row)
        cut = ff.read_frame(fs, path, rows=slice(9, 61), cols=slice(11, 47))
        np.testing.assert_allclose(cut, want[9:61, 11:47], rtol=1e-6, equal_nan=True)
        total, count = ff.frame_sum(fs, path, rows=slice(9, 61))
    assert count == np.count_nonzero(~np.isnan(want[9:61]))
    np.testing.assert_allclose(total / count, np.nanmean(want[9:61], dtype=np.float64), rtol=1e-6)


def test_dn_per_second_divides_by_exptime(mem):
    raw = compressed(aia_like())
    path = put(mem, "aia.fits", raw)
    fs = mem[0]
    dn = ff.read_frame(fs, path)
    rate = ff.read_frame(fs, path, units="DN/s")
    np.testing.assert_allclose(rate, astropy_data(raw, 1) / EXPTIME, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(rate, dn / EXPTIME, rtol=1e-6, equal_nan=True)
    (s_dn, n_dn), (s_rate, n_rate) = ff.frame_sum(fs, path), ff.frame_sum(fs, path, units="DN/s")
    assert n_dn == n_rate
    np.testing.assert_allclose(s_rate, s_dn / EXPTIME, rtol=1e-12)
    cut = ff.read_frame(fs, path, rows=slice(5, 9), units="DN/s")
    np.testing.assert_allclose(cut, dn[5:9] / EXPTIME, rtol=1e-6, equal_nan=True)


def test_hdu_selection_by_index_and_extname(mem):
    a, b = aia_like(32, 40, blanks=False), aia_like(48, 24, blanks=False)
    raw = quiet_bytes(
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.BinTableHDU.from_columns([fits.Column("x", "J", array=np.arange(3))]),
                fits.CompImageHDU(a, image_header(), compression_type="RICE_1", name="FIRST"),
                fits.ImageHDU(b.astype(np.float32), name="SECOND"),
            ]
        )
    )
    fs, path = mem[0], put(mem, "multi.fits", raw)
    assert ff.probe_frame(fs, path).hdu == 2
    np.testing.assert_array_equal(ff.read_frame(fs, path), a.astype(np.float32))
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu="second"), b.astype(np.float32))
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu=3), b.astype(np.float32))
    np.testing.assert_array_equal(ff.read_frame(fs, path, hdu="FIRST"), a.astype(np.float32))
    with pytest.raises(FrameReadError) as info:
        ff.read_frame(fs, path, hdu=1)
    assert info.value.reason == "no image HDU" and "BINTABLE" in str(info.value)
    with pytest.raises(FrameReadError) as info:
        ff.read_frame(fs, path, hdu=9)
    assert info.value.reason == "no image HDU"
    with pytest.raises(FrameReadError) as info:
        ff.probe_frame(fs, path, hdu="NOPE")
    assert info.value.reason == "no image HDU"


# ----------------------------------------------------------------------------- headers
def test_probe_frame_compressed(mem):
    raw = compressed(aia_like())
    fs, path = mem[0], put(mem, "aia.fits", raw)
    info = ff.probe_frame(fs, path)
    assert info.hdu == 1 and info.shape == (128, 100)
    assert info.compressed and info.compression == "RICE_1" and info.tile_shape == (1, 100)
    with fits.open(io.BytesIO(raw)) as hdul:
        want = hdul[1].header
        for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BLANK", "EXPTIME", "T_OBS"):
            assert info.header[key] == want[key], key
    assert "ZBITPIX" not in info.header and "TFORM1" not in info.header
    assert isinstance(info.header["EXPTIME"], float)
    assert pickle.loads(pickle.dumps(info)) == info


def test_probe_frame_uncompressed_and_odd_tiles(mem):
    fs = mem[0]
    path = put(mem, "small.fits", quiet_bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((16, 8)))])))
    info = ff.probe_frame(fs, path)
    assert (info.hdu, info.shape, info.compressed, info.compression, info.tile_shape) == (
        0,
        (16, 8),
        False,
        None,
        None,
    )
    assert info.header["BITPIX"] == -64
    path = put(mem, "odd.fits", compressed(aia_like(), tile_shape=(50, 30)))
    assert ff.probe_frame(fs, path).tile_shape == (50, 30)


def test_read_header_values_reads_only_headers(mem):
    raw = compressed(aia_like(256, 256))
    # Drop the pixel data entirely: a header-only reader must not notice.
    data_start = 2880 + len(fits.Header.fromstring(raw[2880:5760].decode()).tostring())
    head_only = raw[:data_start]
    fs = CountingFS(mem[0])
    path = put(mem, "head.fits", head_only)
    got = ff.read_header_values(fs, path, ["EXPTIME", "t_obs", "BITPIX", "NAXIS1", "NOPE"])
    assert got == {
        "EXPTIME": EXPTIME,
        "t_obs": "2020-02-17T00:00:01.57Z",
        "BITPIX": 16,
        "NAXIS1": 256,
        "NOPE": None,
    }
    # on the complete file, only the start of it is fetched
    fs = CountingFS(mem[0])
    path = put(mem, "full.fits", raw)
    assert ff.read_header_values(fs, path, ["WAVELNTH"]) == {"WAVELNTH": 94}
    assert all(s is not None and e is not None for s, e, _ in fs.reads)
    assert fs.nbytes <= 64 * 1024


def test_long_header_beyond_first_read(mem):
    h = image_header()
    for i in range(2000):  # ~160 KB of header: several growing reads
        h[f"KEY{i}"] = i
    raw = quiet_bytes(fits.HDUList([fits.PrimaryHDU(aia_like(16, 16, blanks=False), header=h)]))
    fs = CountingFS(mem[0])
    path = put(mem, "long.fits", raw)
    assert ff.read_header_values(fs, path, ["KEY1999", "EXPTIME"]) == {
        "KEY1999": 1999,
        "EXPTIME": EXPTIME,
    }
    assert len(fs.reads) >= 2
    np.testing.assert_array_equal(
        ff.read_frame(fs, path, rows=slice(2, 5)), astropy_data(raw, 0)[2:5]
    )


# ----------------------------------------------------------------------------- ranged reads
def test_compressed_cutout_reads_only_touched_tiles(mem):
    raw = compressed(RNG.poisson(100, (256, 256)).astype(np.int16))
    fs = CountingFS(mem[0])
    path = put(mem, "cut.fits", raw)
    cut = ff.read_frame(fs, path, rows=slice(100, 120))
    np.testing.assert_array_equal(cut, astropy_data(raw, 1)[100:120])
    assert all(s is not None for s, _, _ in fs.reads), "no whole-file read for a cutout"
    # header (one 64 KiB read covers it and the tile table), then the tiles' heap bytes
    heap_read = fs.nbytes - min(len(raw), 64 * 1024)
    assert heap_read < 0.2 * len(raw)


def test_uncompressed_cutout_reads_only_its_rows(mem):
    data = RNG.normal(size=(256, 256))
    raw = quiet_bytes(fits.HDUList([fits.PrimaryHDU(data)]))
    fs = CountingFS(mem[0])
    path = put(mem, "plain.fits", raw)
    cut = ff.read_frame(fs, path, rows=slice(200, 210), cols=slice(3, 9))
    np.testing.assert_array_equal(cut, data[200:210, 3:9].astype(np.float32))
    assert fs.nbytes < 64 * 1024 + 10 * 256 * 8 + 64 * 1024
    assert fs.nbytes < len(raw) / 3


def test_whole_frame_is_one_request(mem):
    raw = compressed(aia_like())
    fs = CountingFS(mem[0])
    path = put(mem, "one.fits", raw)
    ff.frame_sum(fs, path)
    assert fs.reads == [(None, None, len(raw))]


def test_header_read_size_setting(mem):
    raw = compressed(aia_like())
    fs = CountingFS(mem[0])
    path = put(mem, "hdr-size.fits", raw)
    with dask.config.set({"intake_helio.header-read-size": 2880}):
        assert ff.read_header_values(fs, path, ["EXPTIME"]) == {"EXPTIME": EXPTIME}
    assert fs.reads[0] == (0, 2880, 2880)


def test_max_gap_setting_merges_ranged_reads(mem):
    raw = compressed(RNG.poisson(100, (256, 256)).astype(np.int16), tile_shape=(16, 16))
    path = put(mem, "gap.fits", raw)
    want = astropy_data(raw, 1)[40:120, 100:120]
    reads = {}
    for gap in (0, 1 << 20):
        fs = CountingFS(mem[0])
        with dask.config.set({"intake_helio.max-gap": gap, "intake_helio.header-read-size": 2880}):
            got = ff.read_frame(fs, path, rows=slice(40, 120), cols=slice(100, 120))
        np.testing.assert_array_equal(got, want)
        reads[gap] = len(fs.reads)
    assert reads[0] > reads[1 << 20]


# ----------------------------------------------------------------------------- failures
def _reason(fs, path, **kw) -> FrameReadError:
    with pytest.raises(FrameReadError) as info:
        ff.read_frame(fs, path, **kw)
    err = info.value
    assert ff.frame_error_reason(err) == err.reason
    assert isinstance(err, OSError)
    assert pickle.loads(pickle.dumps(err)).reason == err.reason
    return err


def test_missing_object(mem):
    fs, root = mem
    err = _reason(fs, f"{root}/nope.fits")
    assert err.reason == "missing object"
    assert err.datakey == f"memory://{root}/nope.fits"
    assert isinstance(err.__cause__, FileNotFoundError)
    with pytest.raises(FrameReadError, match="missing object"):
        ff.probe_frame(fs, f"{root}/nope.fits")


def test_missing_local_file(tmp_path):
    fs = fsspec.filesystem("file")
    err = _reason(fs, str(tmp_path / "nope.fits"))
    assert err.reason == "missing object"
    assert err.datakey.startswith("file://")


def test_empty_file(mem):
    path = put(mem, "empty.fits", b"")
    assert _reason(mem[0], path).reason == "empty file"
    with pytest.raises(FrameReadError, match="empty file"):
        ff.frame_sum(mem[0], path, rows=slice(0, 3))


def test_not_fits(mem):
    path = put(mem, "page.fits", b"<html><body>Access Denied</body></html>" * 100)
    assert _reason(mem[0], path).reason == "not FITS"
    with pytest.raises(FrameReadError, match="not FITS"):
        ff.read_header_values(mem[0], path, ["EXPTIME"])


@pytest.mark.parametrize("name", ["rice_rows", "float64_primary", "rice_whole_tile"])
@pytest.mark.parametrize("cut", [None, slice(0, 2)])
def test_truncated(mem, name, cut):
    raw = CASES[name][0]
    path = put(mem, "half.fits", raw[: len(raw) // 2])
    err = _reason(mem[0], path, rows=cut)
    assert err.reason == "truncated"


def test_truncated_inside_header(mem):
    raw = compressed(aia_like())
    path = put(mem, "hdr.fits", raw[: 2880 + 1000])
    assert _reason(mem[0], path).reason == "truncated"


def test_no_image_hdu(mem):
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=np.ones(5))])
    path = put(mem, "table.fits", quiet_bytes(fits.HDUList([fits.PrimaryHDU(), table])))
    err = _reason(mem[0], path)
    assert err.reason == "no image HDU"
    with pytest.raises(FrameReadError, match="no image HDU"):
        ff.probe_frame(mem[0], path)


def test_no_exptime(mem):
    h = image_header()
    del h["EXPTIME"]
    path = put(mem, "noexp.fits", compressed(aia_like(), header=h))
    err = _reason(mem[0], path, units="DN/s")
    assert err.reason == "no EXPTIME"
    with pytest.raises(FrameReadError, match="no EXPTIME"):
        ff.frame_sum(mem[0], path, units="DN/s")
    ff.read_frame(mem[0], path)  # DN does not need it
    h["EXPTIME"] = 0.0
    path = put(mem, "zeroexp.fits", compressed(aia_like(), header=h))
    assert _reason(mem[0], path, units="DN/s").reason == "no EXPTIME"


def test_corrupt_tiles(mem):
    raw = bytearray(compressed(aia_like(64, 64)))
    table = fits.Header.fromstring(raw[2880:5760].decode())
    heap0 = 2 * 2880 + table["NAXIS1"] * table["NAXIS2"]
    raw[heap0 : heap0 + table["PCOUNT"]] = b"\xff" * table["PCOUNT"]
    path = put(mem, "corrupt.fits", bytes(raw))
    err = _reason(mem[0], path)
    assert err.reason == "corrupt data"
    assert err.__cause__ is not None


def test_permission_denied_and_read_error(mem):
    path = put(mem, "ok.fits", compressed(aia_like()))
    denied = FlakyFS(mem[0], failures=99, exc=PermissionError(errno.EACCES, "Access Denied"))
    assert _reason(denied, path).reason == "permission denied"
    assert denied.calls == 1, "permission errors are not retried"
    before = dict(ff.RETRY_STATS)
    broken = FlakyFS(mem[0], failures=99, exc=OSError(errno.EIO, "503 Slow Down"))
    with dask.config.set({"intake_helio.retry.attempts": 3}):
        err = _reason(broken, path)
    assert err.reason == "read error"
    assert broken.calls == 3
    assert ff.RETRY_STATS["gave_up"] == before["gave_up"] + 1
    # explicit settings win over dask.config
    broken = FlakyFS(mem[0], failures=99, exc=OSError(errno.EIO, "503 Slow Down"))
    settings = dataclasses.replace(current(), retry_attempts=2)
    with pytest.raises(FrameReadError, match="read error"):
        ff.frame_sum(broken, path, settings=settings)
    assert broken.calls == 2


def test_transient_error_is_retried_and_read_succeeds(mem):
    raw = compressed(aia_like())
    path = put(mem, "ok.fits", raw)
    before = dict(ff.RETRY_STATS)
    flaky = FlakyFS(mem[0], failures=2, exc=ConnectionError("connection reset"))
    np.testing.assert_array_equal(ff.read_frame(flaky, path), ff.read_frame(mem[0], path))
    assert flaky.calls == 3
    assert ff.RETRY_STATS["retried"] == before["retried"] + 2
    flaky = FlakyFS(mem[0], failures=1, exc=TimeoutError("read timeout"))
    assert ff.frame_sum(flaky, path, rows=slice(3, 60)) == ff.frame_sum(
        mem[0], path, rows=slice(3, 60)
    )


def test_retry_base_delay_setting_reaches_the_reads(mem, monkeypatch):
    sleeps = []
    monkeypatch.setattr(retry.time, "sleep", sleeps.append)
    path = put(mem, "ok.fits", compressed(aia_like()))
    flaky = FlakyFS(mem[0], failures=2, exc=ConnectionError("connection reset"))
    with dask.config.set({"intake_helio.retry.base-delay": 5.0}):
        ff.read_frame(flaky, path)
    assert len(sleeps) == 2
    assert 2.5 <= sleeps[0] <= 7.5 and 5.0 <= sleeps[1] <= 15.0


# ----------------------------------------------------------------------------- arguments
def test_bad_arguments(mem):
    fs, path = mem[0], put(mem, "ok.fits", compressed(aia_like()))
    with pytest.raises(ValueError, match=r"'DN', 'DN/s'"):
        ff.read_frame(fs, path, units="erg")
    with pytest.raises(ValueError, match="DN/s"):
        ff.frame_sum(fs, path, units="counts")
    with pytest.raises(ValueError, match="empty"):
        ff.read_frame(fs, path, rows=slice(500, 600))
    with pytest.raises(ValueError, match="empty"):
        ff.frame_sum(fs, path, cols=slice(10, 10))
    with pytest.raises(ValueError, match="step"):
        ff.read_frame(fs, path, rows=slice(0, 10, 2))
    with pytest.raises(TypeError):
        ff.read_frame(fs, path, rows=(0, 10))
    with pytest.raises(TypeError):
        ff.read_frame(fs, path, hdu=-1)
    with pytest.raises(TypeError):
        ff.read_header_values(fs, path, "EXPTIME")


def test_argument_errors_are_helio_errors(mem):
    fs, path = mem[0], put(mem, "ok.fits", compressed(aia_like()))
    with pytest.raises(OptionError, match=r"units='erg'"):
        ff.read_frame(fs, path, units="erg")
    bad = [{"rows": slice(500, 600)}, {"rows": slice(0, 10, 2)}, {"rows": (0, 10)}, {"hdu": -1}]
    for kw in bad:
        with pytest.raises(HelioError):
            ff.read_frame(fs, path, **kw)
    with pytest.raises(HelioError):
        ff.read_header_values(fs, path, "EXPTIME")


def test_reasons_are_reason_members(mem):
    fs, root = mem
    with pytest.raises(FrameReadError) as info:
        ff.read_frame(fs, f"{root}/nope.fits")
    assert info.value.reason is Reason.MISSING_OBJECT
    path = put(mem, "half.fits", compressed(aia_like())[:4000])
    with pytest.raises(FrameReadError) as info:
        ff.frame_sum(fs, path)
    assert info.value.reason is Reason.TRUNCATED
    assert ff.frame_error_reason(ValueError("v")) is Reason.INVALID_ARGUMENT


# ----------------------------------------------------------------------------- retry_io
def test_retry_io_retries_then_succeeds():
    calls = []

    def flaky(x, y=0):
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.ECONNRESET, "connection reset by peer")
        return x + y

    before = dict(ff.RETRY_STATS)
    assert ff.retry_io(flaky, 1, y=2, attempts=4, base_delay=0.001) == 3
    assert len(calls) == 3
    assert ff.RETRY_STATS["retried"] == before["retried"] + 2
    assert ff.RETRY_STATS["gave_up"] == before["gave_up"]


def test_retry_io_gives_up_after_attempts():
    calls = []

    def broken():
        calls.append(1)
        raise TimeoutError("timed out")

    before = dict(ff.RETRY_STATS)
    with pytest.raises(TimeoutError):
        ff.retry_io(broken, attempts=3, base_delay=0.001)
    assert len(calls) == 3
    assert ff.RETRY_STATS["gave_up"] == before["gave_up"] + 1
    assert ff.RETRY_STATS["retried"] == before["retried"] + 2


@pytest.mark.parametrize(
    "exc",
    [FileNotFoundError("x"), PermissionError("x"), ValueError("x"), OSError(errno.EINVAL, "bad")],
)
def test_retry_io_does_not_retry_permanent_errors(exc):
    calls = []

    def fail():
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        ff.retry_io(fail, attempts=4, base_delay=0.001)
    assert len(calls) == 1


def test_retry_io_backoff_grows(monkeypatch):
    sleeps = []
    monkeypatch.setattr(retry.time, "sleep", sleeps.append)
    with pytest.raises(ConnectionError):
        ff.retry_io(lambda: (_ for _ in ()).throw(ConnectionError("x")), attempts=4, base_delay=0.2)
    assert len(sleeps) == 3
    for k, s in enumerate(sleeps):
        assert 0.1 * 2**k <= s <= 0.3 * 2**k


# ----------------------------------------------------------------------------- reasons, pickling
@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (FrameReadError("s3://b/k", "truncated"), "truncated"),
        (FileNotFoundError("k"), "missing object"),
        (PermissionError("k"), "permission denied"),
        (TimeoutError("t"), "read error"),
        (ConnectionError("c"), "read error"),
        (OSError(errno.EIO, "io"), "read error"),
        (EOFError("eof"), "truncated"),
        (ValueError("v"), "invalid argument"),
        (RuntimeError("r"), "unexpected error"),
    ],
)
def test_frame_error_reason(exc, reason):
    assert ff.frame_error_reason(exc) == reason


def test_as_frame_error():
    err = FrameReadError("s3://b/k", Reason.TRUNCATED)
    assert ff.as_frame_error("s3://b/other", err) is err
    made = ff.as_frame_error("s3://b/k", FileNotFoundError("no such key"))
    assert isinstance(made, FrameReadError)
    assert (made.datakey, made.reason, made.detail) == ("s3://b/k", "missing object", "no such key")


def test_functions_are_picklable():
    for fn in (ff.probe_frame, ff.read_frame, ff.frame_sum, ff.read_header_values, ff.retry_io):
        assert pickle.loads(pickle.dumps(fn)) is fn


def test_local_files(tmp_path):
    raw = compressed(aia_like(), tile_shape=(50, 30))
    (tmp_path / "a.fits").write_bytes(raw)
    fs = fsspec.filesystem("file")
    path = str(tmp_path / "a.fits")
    np.testing.assert_array_equal(
        ff.read_frame(fs, path, rows=slice(40, 60), cols=slice(25, 35)),
        astropy_data(raw, 1)[40:60, 25:35],
    )
    assert ff.read_header_values(fs, path, ["EXPTIME"]) == {"EXPTIME": EXPTIME}


# ----------------------------------------------------------------------------- shims
def test_image_header_fallback_agrees_with_astropy():
    raw = compressed(aia_like())
    with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
        table = hdul[1].header.copy()
    want = shims.bintable_header_to_image_header(table)
    got = shims._bintable_header_to_image_header_fallback(table)
    keys = ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BLANK", "EXPTIME", "T_OBS")
    for key in keys:
        assert got[key] == want[key], key
    assert not [k for k in got if k.startswith(("Z", "TFORM", "TTYPE"))]


def test_fsspec_shims(mem):
    from fsspec.asyn import get_loop

    async def add(a, b=0):
        return a + b

    assert bounded.fsspec_sync(get_loop(), add, 1, b=2) == 3
    fs = mem[0]
    path = put(mem, "x.bin", b"abc")
    assert bounded.start_async_cat_file(fs, path) is None  # no loop of its own

    async def read():
        return await bounded.fsspec_cat_file(fs, path)

    assert bounded.fsspec_sync(get_loop(), read) == b"abc"
