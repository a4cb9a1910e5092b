"""A dataset whose files come in different FITS forms: ``hdu="auto"`` is each frame's own.

Real AIA files reach HelioCloud from several pipelines: JSOC exports (the image in the
primary HDU), HelioCloud's RICE_1 tile-compressed copies (an empty primary HDU, the image in
extension 1) and rebinned products. Here every file is a copy of sunpy's real
``aia_171_level1.fits`` in one of three forms, mixed in one dataset on the local S3 server:

* ``primary``: the file as sunpy ships it (float64 image in HDU 0);
* ``rice``: its pixels as int16 in a RICE_1 tile-compressed extension 1 (as HelioCloud);
* ``quantised``: its float pixels in a RICE_1 extension with astropy's quantisation.

Every frame's values must equal astropy's reading of its own file, and ``to_map`` must equal
sunpy's Map of each form, whichever form the probes find most common.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import intake_helio as ih

sunpy_data_test = pytest.importorskip("sunpy.data.test")
sunpy_map = pytest.importorskip("sunpy.map")


def _real_file() -> tuple[np.ndarray, fits.Header]:
    path = sunpy_data_test.get_test_filepath("aia_171_level1.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            return np.array(hdul[0].data), hdul[0].header.copy()


def _form(form: str, data: np.ndarray, header: fits.Header, i: int) -> bytes:
    h = header.copy()
    h["DATE-OBS"] = f"2011-02-15T00:{i:02d}:00.340"  # one frame a minute
    h["T_OBS"] = f"2011-02-15T00:{i:02d}:01.340Z"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's float image carries a BLANK card
        if form == "primary":
            fits.PrimaryHDU(data, header=h).writeto(buf)
        elif form == "rice":
            del h["BLANK"]
            h["BLANK"] = -32768
            ints = np.clip(np.round(data), -32767, 32767).astype(np.int16)
            ints[0, :2] = -32768  # two BLANK pixels, as AIA has
            comp = fits.CompImageHDU(ints, header=h, compression_type="RICE_1")
            fits.HDUList([fits.PrimaryHDU(), comp]).writeto(buf)
        else:
            del h["BLANK"]
            comp = fits.CompImageHDU(data.astype(np.float32), header=h, compression_type="RICE_1")
            fits.HDUList([fits.PrimaryHDU(), comp]).writeto(buf)
    return buf.getvalue()


def _astropy(raw: bytes) -> tuple[np.ndarray, fits.Header]:
    """The image and header of the file's first HDU with data, as astropy reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdul:
            hdu = next(h for h in hdul if h.data is not None)
            return np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()


#: Two mixes: compressed frames the majority (the probes say HDU 1), and primary-HDU frames
#: the majority (the probes say HDU 0); either way, every frame of the other form is read.
MIXES = {
    "mostly-compressed": ["rice", "primary", "rice", "quantised", "rice", "primary"],
    "mostly-primary": ["primary", "rice", "primary", "primary", "quantised", "primary"],
}


@pytest.fixture(params=sorted(MIXES))
def mixed(request, s3):
    data, header = _real_file()
    fs = s3.filesystem()
    fs.mkdir("mixed")
    keys, raws = [], []
    for i, form in enumerate(MIXES[request.param]):
        raw = _form(form, data, header, i)
        key = f"s3://mixed/aia171_{i}_{form}.fits"
        fs.pipe_file(key, raw)
        keys.append(key)
        raws.append(raw)
    df = pd.DataFrame(
        {
            "start": pd.date_range("2011-02-15T00:00:00", periods=len(keys), freq="1min"),
            "datakey": keys,
            "filesize": [len(r) for r in raws],
        }
    )
    return df, raws, s3.storage_options


def test_every_form_is_read_at_its_own_image_hdu(mixed):
    df, raws, so = mixed
    frames = ih.open_frames(df, storage_options=so, on_error="nan")
    values = frames.compute()
    assert list(values["read_status"].values) == ["ok"] * len(raws)
    for i, raw in enumerate(raws):
        want, _ = _astropy(raw)
        np.testing.assert_array_equal(values[i].values, want, err_msg=df["datakey"][i])
    # the default on_error="raise" reads them all too
    np.testing.assert_array_equal(ih.open_frames(df, storage_options=so).values, values.values)


def test_irradiance_good_quality_and_disk_statistics_on_mixed_forms(mixed):
    df, raws, so = mixed
    frames = ih.open_frames(df, storage_options=so, on_error="nan", quality="good")
    result = ih.irradiance(frames)
    assert list(result["status"].values) == ["ok"] * len(raws)
    want = [np.nanmean(_astropy(r)[0], dtype=np.float64) for r in raws]
    np.testing.assert_allclose(result["irradiance"].values, want, rtol=1e-6)
    disk = ih.map_frames(frames, ["disk_mean", "offdisk_mean"])
    assert list(disk["status"].values) == ["ok"] * len(raws)
    assert np.all(np.isfinite(disk["disk_mean"].values))


def test_to_map_equals_sunpy_on_each_form(mixed):
    df, raws, so = mixed
    frames = ih.open_frames(df, storage_options=so)
    for i, raw in enumerate(raws):
        data, header = _astropy(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = sunpy_map.Map(data, header)
        got = ih.to_map(frames, i)
        assert type(got) is type(want)
        assert got.date == want.date
        assert got.reference_pixel == want.reference_pixel
        sep = got.reference_coordinate.separation(want.reference_coordinate)
        assert sep.to_value("arcsec") < 1e-6
        np.testing.assert_array_equal(got.data, want.data)


def test_an_explicit_hdu_is_not_auto(mixed):
    """``hdu=1`` means HDU 1 for every frame: the primary-HDU frames then have no image there."""
    df, _, so = mixed
    frames = ih.open_frames(df, storage_options=so, hdu=1, on_error="nan")
    status = frames["read_status"].values
    compressed = ["primary" not in k for k in df["datakey"]]
    for ok, s in zip(compressed, status, strict=True):
        assert (s == "ok") if ok else s.startswith("no image HDU")
