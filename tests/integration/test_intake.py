"""The intake drivers against the real local S3 server (moto on 127.0.0.1).

The demo dataset is published into the server with ``write_demo_dataset``; catalogs are
opened from ``catalogs/demo.yaml`` (endpoint from the environment) and from YAML files
written here. The server is only reachable through the catalogs' ``endpoint_url``, so
every pixel read proves that the storage options reach the frame reads. Expected values
come from astropy reading the same objects through s3fs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import intake
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits

from intake_helio.intake import HelioBucketCatalog, HelioFramesSource
from intake_helio.testing.demo_data import write_demo_dataset

pytestmark = pytest.mark.filterwarnings("error")

CATALOGS = Path(__file__).resolve().parents[2] / "catalogs"
DEMO_NAME = "Local demo (intake-helio)"
CANARY_KEY, CANARY_SECRET = "CANARY-S3-KEY-4d21", "CANARY-S3-SECRET-a9e0"


def astropy_frames(fs, datakeys):
    """(images, EXPTIME values) as astropy reads the objects through s3fs."""
    images, exptimes = [], []
    for key in datakeys:
        with fits.open(io.BytesIO(fs.cat_file(key))) as hdul:
            images.append(np.asarray(hdul[1].data, dtype=np.float32))
            exptimes.append(float(hdul[1].header["EXPTIME"]))
    return np.stack(images), np.array(exptimes)


def expected_keys(demo, start, stop):
    """Datakeys of [start, stop) by the reference client's rule: rows of the yearly indexes
    of the years in range, with row stop >= start and row start < stop (a row's stop is the
    end of its frame's exposure)."""
    t0, t1 = pd.Timestamp(start), pd.Timestamp(stop)
    step = pd.Timedelta("4min")
    years = range(t0.year, (t1 - pd.Timedelta(1, "ns")).year + 1)
    times = [demo.start + i * step for i in range(len(demo.datakeys))]
    ends = [t + pd.Timedelta(e, "s") for t, e in zip(times, demo.exptime, strict=True)]
    keys = [
        k
        for t, end, k in zip(times, ends, demo.datakeys, strict=True)
        if t.year in years and end >= t0 and t < t1
    ]
    assert not set(keys) & set(demo.corrupt), "pick a window without the truncated frame"
    return keys


@pytest.fixture
def demo(s3):
    """12 synthetic 64x64 frames crossing into 2021, one of them truncated."""
    return write_demo_dataset(
        "s3://helio-demo/",
        s3.storage_options,
        frames=12,
        size=64,
        start="2020-12-31T23:30:00",
        corrupt=1,
    )


@pytest.fixture
def demo_cat(s3, demo, monkeypatch):
    monkeypatch.setenv("INTAKE_HELIO_DEMO_ENDPOINT_URL", s3.endpoint_url)
    return intake.open_catalog(str(CATALOGS / "demo.yaml"))


def test_demo_yaml_reads_real_pixels(demo, demo_cat, s3fs_client):
    bucket = demo_cat.demo
    assert isinstance(bucket, HelioBucketCatalog)
    assert list(bucket) == ["aia_0094"]
    assert bucket.metadata["name"] == DEMO_NAME

    src = bucket.aia_0094(on_error="nan")  # default window: the whole 48-minute run
    info = src.discover()
    assert info["shape"] == (12, 64, 64)
    assert info["dims"] == ("time", "y", "x")
    frames = src.read()
    np.testing.assert_array_equal(frames["datakey"].values, np.array(demo.datakeys))
    assert pd.Timestamp(frames["time"].values[0]).year == 2020  # two yearly indexes
    assert pd.Timestamp(frames["time"].values[-1]).year == 2021

    bad = demo.datakeys.index(demo.corrupt[0])
    assert np.isnan(frames.values[bad]).all()
    keep = [i for i, k in enumerate(demo.datakeys) if k not in demo.corrupt]
    means = np.nanmean(frames.values[keep].astype(np.float64), axis=(1, 2))
    np.testing.assert_allclose(means, np.array(demo.expected_mean)[keep], rtol=1e-12)
    want, _ = astropy_frames(s3fs_client, [demo.datakeys[i] for i in keep])
    np.testing.assert_array_equal(frames.values[keep], want)


def test_demo_registry_to_bucket_to_dataset(demo, demo_cat, s3fs_client):
    registry = demo_cat.demo_registry
    assert list(registry) == [DEMO_NAME]
    src = registry[DEMO_NAME].aia_0094(
        start="2020-12-31T23:40", stop="2020-12-31T23:50", header_keys=["EXPTIME"]
    )
    assert registry[f"{DEMO_NAME}.aia_0094"].endpoint == "s3://helio-demo/"
    frames = src.read()
    keys = list(frames["datakey"].values)
    assert keys == expected_keys(demo, "2020-12-31T23:40", "2020-12-31T23:50")
    want, exptimes = astropy_frames(s3fs_client, keys)
    np.testing.assert_array_equal(frames.values, want)
    np.testing.assert_array_equal(frames["EXPTIME"].values, exptimes)
    walked = registry.walk(depth=2)
    assert set(walked) == {DEMO_NAME, f"{DEMO_NAME}.aia_0094"}


def test_yaml_written_here_with_the_endpoint_and_canary_credentials(s3, demo, tmp_path):
    path = tmp_path / "local.yaml"
    spec = {
        "metadata": {"version": 1},
        "sources": {
            "local": {
                "driver": "helio_bucket",
                "args": {
                    "endpoint": "s3://helio-demo/",
                    "storage_options": {
                        "endpoint_url": s3.endpoint_url,
                        "key": CANARY_KEY,
                        "secret": CANARY_SECRET,
                    },
                },
            },
            "registry": {
                "driver": "helio_registry",
                "args": {
                    "url": demo.registry_url,
                    "storage_options": {
                        "s3": {
                            "endpoint_url": s3.endpoint_url,
                            "key": CANARY_KEY,
                            "secret": CANARY_SECRET,
                        }
                    },
                },
            },
        },
    }
    path.write_text(yaml.safe_dump(spec))
    cat = intake.open_catalog(str(path))
    src = cat.local.aia_0094(
        start="2020-12-31T23:30",
        stop="2020-12-31T23:50",
        cutout={"y": slice(16, 48), "x": slice(8, 40)},
        units="DN/s",
    )
    frames = src.read()
    keys = list(frames["datakey"].values)
    assert keys == expected_keys(demo, "2020-12-31T23:30", "2020-12-31T23:50")
    want, exptimes = astropy_frames(s3.filesystem(), keys)
    np.testing.assert_allclose(
        frames.values, want[:, 16:48, 8:40] / exptimes[:, None, None], rtol=1e-6
    )
    # the same frames through the registry (per-protocol storage options)
    via_registry = cat.registry[DEMO_NAME]["aia_0094"](
        start="2020-12-31T23:30", stop="2020-12-31T23:50"
    )
    np.testing.assert_array_equal(via_registry.read()["datakey"].values, keys)

    texts = [
        src.yaml(),
        repr(src),
        str(src.describe()),
        cat.local.yaml(),
        str(cat.local.describe()),
        cat.local.serialize(),
        cat.registry.yaml(),
        str(cat.registry.describe()),
        cat.registry[DEMO_NAME].yaml(),
        str(cat.registry[DEMO_NAME].describe()),
    ]
    for text in texts:
        assert CANARY_KEY not in text and CANARY_SECRET not in text
    assert src.storage_options["secret"] == CANARY_SECRET  # still used for reading


def test_pickled_source_reads_from_s3(demo, demo_cat):
    src = demo_cat.demo.aia_0094(start="2021-01-01", stop="2021-01-02", header_keys=["EXPTIME"])
    clone = pickle.loads(pickle.dumps(src))
    assert isinstance(clone, HelioFramesSource)
    got = clone.to_dask().compute()
    want = src.read()
    keys = expected_keys(demo, "2021-01-01", "2021-01-02")
    np.testing.assert_array_equal(got["datakey"].values, keys)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got["EXPTIME"].values, want["EXPTIME"].values)
    means = np.nanmean(got.values.astype(np.float64), axis=(1, 2))
    np.testing.assert_allclose(means, np.array(demo.expected_mean[-len(keys) :]), rtol=1e-12)


def test_direct_opener_with_storage_options(s3, demo):
    cat = intake.open_helio_bucket("s3://helio-demo", storage_options=s3.storage_options)
    src = cat["aia_0094"](start="2021-01-01T00:10", stop="2021-01-01T00:20")
    keys = expected_keys(demo, "2021-01-01T00:10", "2021-01-01T00:20")
    assert src.discover()["shape"] == (len(keys), 64, 64)
    frames = src.to_dask()
    assert list(frames["datakey"].values) == keys
    want, _ = astropy_frames(s3.filesystem(), list(frames["datakey"].values))
    np.testing.assert_array_equal(frames.values, want)
