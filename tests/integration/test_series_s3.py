"""Time-series datasets from a real local S3 server, as a new user opens them: a bucket holding
a CDF dataset written by cdflib, opened through the catalog, intake (v1 and v2) and a local
cluster of worker processes; the same trust boundary as frames (URL policy, credentials)."""

from __future__ import annotations

import tempfile

import cdflib.xarray
import intake
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client

import intake_helio as ih
from intake_helio.testing.cdf_files import magnetometer_cdf
from intake_helio.testing.series_data import SeriesFile, publish_series
from tests.builders import loopback_cluster

ROOT = "s3://helio-series/"
T0 = pd.Timestamp("2020-06-01")
HOUR = pd.Timedelta("1h")


def _reference(data: bytes) -> xr.Dataset:
    with tempfile.NamedTemporaryFile(suffix=".cdf") as f:
        f.write(data)
        f.flush()
        return cdflib.xarray.cdf_to_xarray(f.name, to_datetime=True, fillval_to_nan=True).load()


@pytest.fixture
def mag(s3):
    files = [
        SeriesFile(
            f"mag/{T0 + h * HOUR:%Y%m%d_%H}.cdf",
            T0 + h * HOUR,
            T0 + (h + 1) * HOUR,
            magnetometer_cdf(T0 + h * HOUR, T0 + (h + 1) * HOUR, "5s", state_cadence="60s"),
        )
        for h in range(3)
    ]
    publish_series(ROOT, s3.storage_options, "mag_cdf", files, filetype="CDF")
    want = xr.concat([_reference(f.data)[["B_GSE", "B_mag"]] for f in files], "Epoch")
    return files, want


def test_a_cdf_dataset_opens_through_the_catalog_and_intake_equal_to_cdflib(s3, mag):
    _, want = mag
    so = s3.storage_options
    bucket = ih.open_bucket(ROOT, so)
    row = bucket.search("").to_dataframe().set_index("id").loc["mag_cdf"]
    assert (row.filetype, row.opens_as) == ("CDF", "series")
    start, stop = T0 + 0.25 * HOUR, T0 + 2.5 * HOUR
    keep = (want.Epoch.values >= np.datetime64(start)) & (want.Epoch.values < np.datetime64(stop))

    ds = bucket["mag_cdf"].to_dataset(start, stop, variables=["B_GSE"])
    assert list(ds.data_vars) == ["B_GSE", "file_status"]
    with loopback_cluster(workers=2) as cluster, Client(cluster):  # tasks in worker processes
        got = ds.compute()
    np.testing.assert_array_equal(got.time.values, want.Epoch.values[keep])
    np.testing.assert_array_equal(got.B_GSE.values, want.B_GSE.values[keep])

    cat = intake.open_helio_bucket(ROOT, storage_options=so)
    source = cat["mag_cdf"](start=start, stop=stop)
    assert type(source).__name__ == "HelioSeriesSource" and source.container == "xarray"
    via_v1 = source.read()
    np.testing.assert_array_equal(via_v1.B_mag.values, want.B_mag.values[keep])
    reader = ih.HelioBucketReader(ROOT, storage_options=so).read()["mag_cdf"]
    via_v2 = reader.read(start=start.isoformat(), stop=stop.isoformat(), variables=["B_mag"])
    assert isinstance(via_v2, xr.Dataset)
    np.testing.assert_array_equal(via_v2.B_mag.values, want.B_mag.values[keep])
    assert s3.secret not in source.yaml() and "secret: '***'" in source.yaml()


def test_refused_datakeys_are_never_read_and_secrets_never_shown(s3, mag):
    del mag  # the dataset is written; its index is changed below
    so = s3.storage_options
    fs = s3.filesystem()
    index = "helio-series/mag_cdf/registries/mag_cdf_2020.csv"
    text = fs.cat_file(index).decode()
    internal = f"http://user:{s3.secret}@127.0.0.1:9/x.cdf"
    fs.pipe_file(index, text.replace(f"{ROOT}mag/20200601_01.cdf", internal).encode())
    ds = ih.open_bucket(ROOT, so, cache=False)["mag_cdf"]
    with pytest.raises(ih.HelioError) as info:
        ds.to_dataset(T0, T0 + 3 * HOUR)
    assert s3.secret not in str(info.value)
    opened = ds.to_dataset(T0, T0 + 3 * HOUR, on_error="nan")
    status = list(opened.file_status.values)
    assert status[0] == status[2] == "ok" and status[1].startswith(ih.Reason.URL_NOT_ALLOWED)
    assert opened.sizes["time"] == 2 * 720
    shown = repr(opened) + repr(opened.datakey.values) + str(opened.attrs)
    assert s3.secret not in shown
