"""The demo dataset written into the real local S3 server (moto on 127.0.0.1) and read back."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from intake_helio.testing.demo_data import write_demo_dataset


def _image(raw: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(raw)) as hdul:
        return np.array(hdul[1].data)


def test_default_demo_dataset_in_local_s3(s3, s3fs_client):
    fs = s3fs_client
    assert not fs.exists("helio-demo")
    ds = write_demo_dataset(storage_options=s3.storage_options)
    fs.invalidate_cache()

    assert ds.root == "s3://helio-demo/"
    assert ds.registry_url == "s3://helio-demo/HelioDataRegistry.json"
    assert fs.exists("helio-demo")  # the bucket was created

    registry = json.loads(fs.cat_file("helio-demo/HelioDataRegistry.json"))
    assert registry["registry"][0]["endpoint"] == "s3://helio-demo/"
    catalog = json.loads(fs.cat_file("helio-demo/catalog.json"))
    assert catalog["status"] == {"code": 1200, "message": "OK"}
    (entry,) = catalog["catalog"]
    assert entry["index"] == "s3://helio-demo/sdo/aia/registries/"
    assert fs.ls("helio-demo/sdo/aia/registries", detail=False) == [
        "helio-demo/sdo/aia/registries/aia_0094_2020.csv",
        "helio-demo/sdo/aia/registries/aia_0094_2021.csv",
    ]

    # every index row names an object of that size
    rows = []
    for year in (2020, 2021):
        text = fs.cat_file(f"helio-demo/sdo/aia/registries/aia_0094_{year}.csv").decode()
        rows += [line.split(",") for line in text.splitlines()[1:]]
    assert [r[2] for r in rows] == list(ds.datakeys)
    assert all(k.startswith("s3://helio-demo/sdo/aia/20") for k in ds.datakeys)
    for _, _, key, size in rows:
        assert fs.size(key) == int(size)
    assert len(fs.find("helio-demo/sdo/aia", withdirs=False)) == 48 + 2

    # frames read back through S3 match the expected means; the corrupt one fails
    for key, expected in zip(ds.datakeys, ds.expected_mean, strict=True):
        raw = fs.cat_file(key)
        if key in ds.corrupt:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises((OSError, ValueError, TypeError)):
                    _image(raw)
            continue
        assert np.nanmean(_image(raw), dtype=np.float64) == pytest.approx(expected, rel=1e-6)

    # astropy can also read a frame straight from an s3fs file object
    good = next(k for k in ds.datakeys if k not in ds.corrupt)
    with fs.open(good, "rb") as f, fits.open(f) as hdul:
        assert hdul[1].header["WAVELNTH"] == 94
        assert np.isnan(hdul[1].data).any()


def test_rewrite_into_existing_bucket(s3, s3fs_client):
    s3fs_client.mkdir("helio-demo")
    first = write_demo_dataset(storage_options=s3.storage_options, frames=3, size=32, corrupt=0)
    second = write_demo_dataset(
        "s3://helio-demo", storage_options=s3.storage_options, frames=4, size=32, corrupt=0
    )
    assert second.root == "s3://helio-demo/"
    assert second.datakeys[:3] == first.datakeys
    s3fs_client.invalidate_cache()
    text = s3fs_client.cat_file("helio-demo/sdo/aia/registries/aia_0094_2020.csv").decode()
    assert len(text.splitlines()) == 1 + 4


@pytest.mark.slow
def test_full_size_frames_with_reuse(s3, s3fs_client):
    ds = write_demo_dataset(
        "s3://helio-full/",
        s3.storage_options,
        frames=3,
        size=4096,
        reuse=1,
        corrupt=0,
        start="2021-01-01T00:00:00",
    )
    s3fs_client.invalidate_cache()
    sizes = [s3fs_client.size(k) for k in ds.datakeys]
    assert len(set(sizes)) == 1  # same pixels, same compressed tiles
    ratio = 4096 * 4096 * 2 / sizes[0]
    assert 12e6 < sizes[0] < 16e6 and 2.1 < ratio < 2.7, (sizes[0], ratio)
    image = _image(s3fs_client.cat_file(ds.datakeys[-1]))
    assert image.shape == (4096, 4096)
    assert np.nanmean(image, dtype=np.float64) == pytest.approx(ds.expected_mean[-1], rel=1e-6)
    assert ds.times[-1] == pd.Timestamp("2021-01-01T00:08:00")
