"""Reading FITS frames from a real S3 endpoint (moto on 127.0.0.1): ranged reads and bytes.

The bytes counted here are those s3fs actually received from the server.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io import fits

import intake_helio.fits.frame as ff
from intake_helio.base.errors import FrameReadError
from intake_helio.io.transport import filesystem
from intake_helio.testing.aia import frame_bytes
from tests.builders import CountingFS

BUCKET = "frames-test"
EXPTIME = 2.9


def _header() -> fits.Header:
    h = fits.Header()
    h["BLANK"] = -32768
    h["EXPTIME"] = EXPTIME
    h["T_OBS"] = "2020-02-17T00:00:01.57Z"
    return h


@pytest.fixture(scope="module")
def big_frame() -> tuple[bytes, np.ndarray]:
    """A full-size AIA-like frame: 4096x4096 int16, Poisson noise around 100 DN, one
    row per RICE_1 tile (cfitsio's default), a BLANK border; and astropy's decoding of it.
    """
    rng = np.random.default_rng(94)
    data = rng.poisson(100, (4096, 4096)).astype(np.int16)
    data[:, :40] = -32768
    raw = frame_bytes(
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.CompImageHDU(data, header=_header(), compression_type="RICE_1"),
            ]
        )
    )
    with fits.open(io.BytesIO(raw)) as hdul:
        assert hdul[1].tile_shape == (1, 4096)
        want = np.asarray(hdul[1].data, dtype=np.float32)
    return raw, want


@pytest.fixture
def bucket(s3):
    s3.filesystem().mkdir(BUCKET)
    return s3


def _upload(s3, key: str, raw: bytes):
    """Store ``raw`` and return ``(counting fs, path)`` as intake-helio opens it."""
    fs, path = filesystem(f"s3://{BUCKET}/{key}", s3.storage_options)
    fs.pipe_file(path, raw)
    return CountingFS(fs), path


def test_cutout_of_full_size_frame_fetches_few_bytes(bucket, big_frame):
    raw, want = big_frame
    ratio = 4096 * 4096 * 2 / len(raw)
    assert 2.0 < ratio < 3.5, f"unrealistic compression ratio {ratio:.2f}"
    fs, path = _upload(bucket, "aia/big.fits", raw)
    cut = ff.read_frame(fs, path, rows=slice(1000, 1200))
    np.testing.assert_array_equal(cut, want[1000:1200])
    assert all(s is not None and e is not None for s, e, _ in fs.reads), fs.reads
    assert fs.nbytes <= 0.08 * len(raw), f"{fs.nbytes} of {len(raw)} bytes fetched"
    # a 2-D cutout (rows and columns) of the same frame reads the same tiles
    fs.reads.clear()
    total, count = ff.frame_sum(fs, path, rows=slice(1000, 1200), cols=slice(0, 300), units="DN/s")
    sub = want[1000:1200, :300]
    assert count == np.count_nonzero(~np.isnan(sub))
    np.testing.assert_allclose(
        total / count, np.nanmean(sub, dtype=np.float64) / EXPTIME, rtol=1e-6
    )
    assert fs.nbytes <= 0.08 * len(raw)


def test_full_frame_is_one_request(bucket, big_frame):
    raw, want = big_frame
    fs, path = _upload(bucket, "aia/big.fits", raw)
    total, count = ff.frame_sum(fs, path)
    assert fs.reads == [(None, None, len(raw))]
    assert count == np.count_nonzero(~np.isnan(want))
    np.testing.assert_allclose(total / count, np.nanmean(want, dtype=np.float64), rtol=1e-6)
    fs.reads.clear()
    np.testing.assert_array_equal(ff.read_frame(fs, path), want)
    assert fs.nbytes == len(raw)


def test_headers_read_only_the_start(bucket, big_frame):
    raw, _ = big_frame
    fs, path = _upload(bucket, "aia/big.fits", raw)
    info = ff.probe_frame(fs, path)
    assert (info.hdu, info.shape, info.compression, info.tile_shape) == (
        1,
        (4096, 4096),
        "RICE_1",
        (1, 4096),
    )
    assert info.header["BITPIX"] == 16 and info.header["EXPTIME"] == EXPTIME
    assert ff.read_header_values(fs, path, ["T_OBS", "BLANK", "QUALITY"]) == {
        "T_OBS": "2020-02-17T00:00:01.57Z",
        "BLANK": -32768,
        "QUALITY": None,
    }
    assert fs.nbytes <= 2 * 64 * 1024


def test_small_uncompressed_frame_cutout(bucket):
    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (256, 256))
    raw = frame_bytes(fits.HDUList([fits.PrimaryHDU(data)]))
    fs, path = _upload(bucket, "small/f64.fits", raw)
    np.testing.assert_array_equal(ff.read_frame(fs, path), data.astype(np.float32))
    fs.reads.clear()
    cut = ff.read_frame(fs, path, rows=slice(250, 256), cols=slice(10, 20))
    np.testing.assert_array_equal(cut, data[250:256, 10:20].astype(np.float32))
    assert fs.nbytes < len(raw) / 3


def test_errors_over_s3(bucket, big_frame):
    raw, _ = big_frame
    fs, path = _upload(bucket, "aia/big.fits", raw)
    with pytest.raises(FrameReadError) as info:
        ff.read_frame(fs, path + ".missing")
    assert info.value.reason == "missing object"
    assert info.value.datakey == f"s3://{BUCKET}/aia/big.fits.missing"

    for cut in (None, slice(0, 10), slice(4000, 4096)):
        fs, path = _upload(bucket, "aia/half.fits", raw[: len(raw) // 2])
        with pytest.raises(FrameReadError) as info:
            ff.read_frame(fs, path, rows=cut)
        assert info.value.reason == "truncated", cut

    for cut in (None, slice(0, 10)):
        fs, path = _upload(bucket, "aia/empty.fits", b"")
        with pytest.raises(FrameReadError) as info:
            ff.frame_sum(fs, path, rows=cut)
        assert info.value.reason == "empty file", cut

    fs, path = _upload(bucket, "aia/junk.fits", b"<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(FrameReadError) as info:
        ff.read_header_values(fs, path, ["EXPTIME"])
    assert info.value.reason == "not FITS"


def test_other_compressions_over_s3(bucket):
    rng = np.random.default_rng(2)
    data = rng.poisson(100, (200, 180)).astype(np.int16)
    data[5, :9] = -32768
    for name, kw in {
        "gzip": {"compression_type": "GZIP_1", "tile_shape": (16, 64)},
        "rice_odd": {"compression_type": "RICE_1", "tile_shape": (50, 30)},
        "hcompress": {"compression_type": "HCOMPRESS_1", "tile_shape": (40, 60)},
    }.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = frame_bytes(
                fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, _header(), **kw)])
            )
            with fits.open(io.BytesIO(raw)) as hdul:
                want = np.asarray(hdul[1].data, dtype=np.float32)
        fs, path = _upload(bucket, f"other/{name}.fits", raw)
        np.testing.assert_allclose(ff.read_frame(fs, path), want, rtol=1e-6, equal_nan=True)
        cut = ff.read_frame(fs, path, rows=slice(33, 97), cols=slice(70, 150))
        np.testing.assert_allclose(cut, want[33:97, 70:150], rtol=1e-6, equal_nan=True)
