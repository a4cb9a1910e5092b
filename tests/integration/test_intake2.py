"""The intake 2 readers against the real local S3 server (moto on 127.0.0.1).

Two demo datasets are published into one bucket with ``write_demo_dataset``. Catalogs come
from ``HelioBucketReader``/``HelioRegistryReader`` and from readers put into an
``intake.readers.entry.Catalog``; they are saved with ``to_yaml_file`` and opened again
with ``intake.from_yaml_file``. Expected values come from the intake-agnostic core
(``open_bucket(...)[id].to_dataarray``) and from astropy reading the same objects.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import intake
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from intake.readers.entry import Catalog

import intake_helio as ih
from intake_helio.base.errors import DatasetNotFoundError, HelioError, TimeRangeError
from intake_helio.base.options import OptionError
from intake_helio.intake.common import DriverArgumentTypeError
from intake_helio.testing.demo_data import write_demo_dataset

pytestmark = pytest.mark.filterwarnings("error")

ROOT = "s3://helio-demo/"
DEMO_NAME = "Local demo (intake-helio)"
CANARY_KEY, CANARY_SECRET = "CANARY-V2-KEY-61c4", "CANARY-V2-SECRET-e07b"
WINDOW = {"start": "2020-12-31T23:30", "stop": "2020-12-31T23:50"}  # 5 aia_0094 frames, all ok
WINDOW_0131 = {"start": "2021-01-01T03:00", "stop": "2021-01-01T03:12"}  # 3 aia_0131 frames


@pytest.fixture
def demo(s3):
    """aia_0094 (12 frames, one truncated) and aia_0131 (6 frames) in one bucket.

    The generator names files by time only, so the second run starts later."""
    first = write_demo_dataset(
        ROOT, s3.storage_options, frames=12, size=64, start="2020-12-31T23:30:00", corrupt=1
    )
    second = write_demo_dataset(
        ROOT,
        s3.storage_options,
        frames=6,
        size=32,
        start="2021-01-01T03:00:00",
        dataset_id="aia_0131",
        corrupt=0,
        seed=3,
    )
    return {"aia_0094": first, "aia_0131": second}


@pytest.fixture
def canary_options(s3):
    """Storage options that reach the server, with canary credentials (moto takes any)."""
    return {"endpoint_url": s3.endpoint_url, "key": CANARY_KEY, "secret": CANARY_SECRET}


def core_frames(s3, dataset, **kwargs):
    """What the intake-agnostic core gives for the same arguments, computed."""
    record = ih.open_bucket(ROOT, s3.storage_options)[dataset]
    return record.to_dataarray(storage_options=s3.storage_options, **kwargs).compute()


def astropy_images(fs, datakeys):
    images = []
    for key in datakeys:
        with fits.open(io.BytesIO(fs.cat_file(key))) as hdul:
            images.append(np.asarray(hdul[1].data, dtype=np.float32))
    return np.stack(images)


def assert_no_canary(text: str) -> None:
    assert CANARY_KEY not in text and CANARY_SECRET not in text


def test_importing_intake_registers_the_readers_through_the_entry_point():
    code = (
        "import sys, intake\n"
        "from intake.readers.readers import BaseReader\n"
        "from intake.readers.utils import subclasses\n"
        "names = {c.__name__ for c in subclasses(BaseReader)}\n"
        "print(sorted(n for n in names if n.startswith('Helio')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == (
        "['HelioBucketReader', 'HelioFramesReader', 'HelioRegistryReader', 'HelioSeriesReader']"
    )
    assert ih.HelioFramesReader is intake.import_name("intake_helio.intake.v2:HelioFramesReader")


def test_bucket_reader_lists_the_datasets_and_each_entry_reads_to_the_frames(s3, demo):
    reader = ih.HelioBucketReader(ROOT, storage_options=s3.storage_options)
    assert reader.output_instance == "intake.readers.entry:Catalog"
    cat = reader.read()
    assert isinstance(cat, Catalog)
    assert sorted(cat) == ["aia_0094", "aia_0131"]
    assert cat.metadata["name"] == DEMO_NAME
    assert cat.metadata["endpoint"] == ROOT

    for dataset, info in demo.items():
        entry = cat[dataset]
        assert isinstance(entry, ih.HelioFramesReader)
        assert entry.metadata["id"] == dataset
        assert entry.metadata["start"] == info.start.isoformat()
        # no time range: the dataset's last day, here the whole run
        frames = entry(on_error="nan").read()
        assert isinstance(frames, xr.DataArray)
        assert frames.dims == ("time", "y", "x")
        assert frames.chunks is not None  # lazy until computed
        frames = frames.compute()
        assert list(frames["datakey"].values) == list(info.datakeys)
        want = core_frames(s3, dataset, start=info.start, stop=info.stop, on_error="nan")
        xr.testing.assert_identical(frames, want)
        keep = [i for i, k in enumerate(info.datakeys) if k not in info.corrupt]
        means = np.nanmean(frames.values[keep].astype(np.float64), axis=(1, 2))
        np.testing.assert_allclose(means, np.array(info.expected_mean)[keep], rtol=1e-12)
        images = astropy_images(s3.filesystem(), [info.datakeys[i] for i in keep])
        np.testing.assert_array_equal(frames.values[keep], images)


def test_frames_reader_options_reach_open_frames(s3, demo):
    options = {
        **WINDOW,
        "cutout": {"y": slice(16, 48), "x": [8, 40]},
        "header_keys": ["EXPTIME"],
        "units": "DN/s",
    }
    reader = ih.HelioFramesReader(ROOT, "aia_0094", storage_options=s3.storage_options, **options)
    assert reader.kwargs["cutout"] == {"y": [16, 48], "x": [8, 40]}  # YAML-safe
    assert reader.kwargs["start"] == "2020-12-31T23:30:00"
    got = reader.read().compute()
    want = core_frames(
        s3,
        "aia_0094",
        **{**options, "cutout": {"y": slice(16, 48), "x": slice(8, 40)}},
    )
    xr.testing.assert_identical(got, want)
    assert got.shape == (5, 32, 32)
    assert got.attrs["units"] == "DN/s"
    # read() and discover() take overrides; the reader itself is unchanged
    # 23:58 and 00:02 (the 23:58 frame's exposure ends at 23:58:02.9: from 23:59 it is out)
    later = reader.read(start="2020-12-31T23:58", stop="2021-01-01T00:06").compute()
    assert later.sizes["time"] == 2
    assert reader.read(start="2020-12-31T23:59", stop="2021-01-01T00:06").sizes["time"] == 1
    assert reader.discover().sizes["time"] == 5
    # a pickled reader (as on a dask worker) reads the same
    clone = pickle.loads(pickle.dumps(reader))
    xr.testing.assert_identical(clone.read().compute(), got)


def test_catalog_made_from_the_readers_round_trips_through_yaml(s3, demo, canary_options, tmp_path):
    frames = ih.HelioFramesReader(
        ROOT, "aia_0131", storage_options=canary_options, header_keys="EXPTIME", **WINDOW_0131
    )
    cat = Catalog()
    cat.add_entry(frames, name="frames")
    cat.give_name("frames", "aia_0131_window")
    cat["bucket"] = ih.HelioBucketReader(ROOT, storage_options=canary_options)
    cat["registry"] = ih.HelioRegistryReader(
        demo["aia_0094"].registry_url, storage_options={"s3": canary_options}
    )
    before = {
        "frames": cat["frames"].read().compute(),
        "bucket": cat["bucket"].read()["aia_0094"](on_error="nan", **WINDOW).read().compute(),
        "registry": cat["registry"].read()[DEMO_NAME].read()["aia_0131"].read().compute(),
    }
    # in this process the entries keep the credentials they were made with
    assert cat["frames"].storage_options["secret"] == CANARY_SECRET

    path = tmp_path / "helio.yaml"
    cat.to_yaml_file(str(path))
    text = path.read_text()
    assert_no_canary(text)
    assert "'***'" in text and s3.endpoint_url in text

    loaded = intake.from_yaml_file(str(path))
    assert list(loaded) == ["aia_0131_window"]
    same = {k: v for k, v in frames.kwargs.items() if k != "storage_options"}
    assert {k: loaded["aia_0131_window"].kwargs[k] for k in same} == same
    # credentials were not saved: a read from the saved catalog takes them from the
    # environment (the tests' AWS_* variables), or from storage_options= given again
    assert loaded["frames"].storage_options == {"endpoint_url": s3.endpoint_url}
    again = loaded["frames"](storage_options=canary_options)
    assert again.storage_options == canary_options
    after = {
        "frames": loaded["frames"].read().compute(),
        "bucket": loaded["bucket"].read()["aia_0094"](on_error="nan", **WINDOW).read().compute(),
        "registry": loaded["registry"].read()[DEMO_NAME].read()["aia_0131"].read().compute(),
    }
    for key, value in before.items():
        xr.testing.assert_identical(after[key], value)
    xr.testing.assert_identical(again.read().compute(), before["frames"])
    assert before["frames"].sizes["time"] == 3
    assert before["frames"]["EXPTIME"].notnull().all()
    np.testing.assert_array_equal(
        before["frames"].values,
        astropy_images(s3.filesystem(), list(before["frames"]["datakey"].values)),
    )


def test_bucket_and_registry_catalogs_round_trip_without_credentials(
    s3, demo, canary_options, tmp_path
):
    bucket = ih.HelioBucketReader(ROOT, storage_options=canary_options).read()
    registry = ih.HelioRegistryReader(
        demo["aia_0094"].registry_url, storage_options={"s3": canary_options}
    ).read()
    assert list(registry) == [DEMO_NAME]
    assert isinstance(registry[DEMO_NAME], ih.HelioBucketReader)

    for name, cat in {"bucket": bucket, "registry": registry}.items():
        path = tmp_path / f"{name}.yaml"
        cat.to_yaml_file(str(path))
        assert_no_canary(path.read_text())
        loaded = intake.from_yaml_file(str(path))
        assert sorted(loaded) == sorted(cat)
        assert loaded.metadata == cat.metadata

    loaded = intake.from_yaml_file(str(tmp_path / "bucket.yaml"))
    for dataset in ("aia_0094", "aia_0131"):
        got = loaded[dataset](on_error="nan").read().compute()
        want = bucket[dataset](on_error="nan").read().compute()
        xr.testing.assert_identical(got, want)
    via_registry = intake.from_yaml_file(str(tmp_path / "registry.yaml"))[DEMO_NAME].read()
    assert sorted(via_registry) == ["aia_0094", "aia_0131"]
    xr.testing.assert_identical(
        via_registry["aia_0094"](**WINDOW).read().compute(),
        bucket["aia_0094"](**WINDOW).read().compute(),
    )

    shown = [
        repr(bucket),
        repr(bucket["aia_0094"]),
        str(bucket["aia_0094"].kwargs),
        repr(bucket.entries["aia_0094"]),
        repr(registry[DEMO_NAME]),
        str(registry.to_dict()),
        str(bucket.to_dict()),
        bucket["aia_0094"].token,
    ]
    for text in shown:
        assert_no_canary(text)
    assert bucket["aia_0094"].storage_options["key"] == CANARY_KEY  # still used for reading


def test_readers_check_their_arguments_with_helio_errors(s3, demo):
    with pytest.raises(OptionError, match="units='counts'"):
        ih.HelioFramesReader(ROOT, "aia_0094", units="counts")
    with pytest.raises(TimeRangeError, match="not before"):
        ih.HelioFramesReader(ROOT, "aia_0094", start="2021-01-02", stop="2021-01-01")
    with pytest.raises(HelioError, match="dataset=''"):
        ih.HelioFramesReader(ROOT, "")
    with pytest.raises(HelioError, match="storage_options has type list"):
        ih.HelioBucketReader(ROOT, storage_options=["anon"])
    with pytest.raises(HelioError, match="url has type int"):
        ih.HelioRegistryReader(3)
    reader = ih.HelioFramesReader(ROOT, "aia_0094", storage_options=s3.storage_options)
    with pytest.raises(DriverArgumentTypeError, match="keyword arguments only"):
        reader("2021-01-01")
    with pytest.raises(DatasetNotFoundError, match="aia_0094"):
        reader(dataset="aia_0095").read()
    with pytest.raises(OptionError, match="on_error='skip'"):
        reader.read(on_error="skip")
