"""intake_helio.catalog.writer: what it writes reads back through the catalog readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from intake_helio.base.errors import CatalogFormatError, HelioError, TimeRangeError
from intake_helio.catalog import writer
from intake_helio.catalog.index import index_url, parse_index
from intake_helio.catalog.registry import Bucket, Registry

ROWS = [
    (pd.Timestamp("2020-12-31T23:56:00.123456"), "2021-01-01T00:00Z", "s3://b/x/1.fits", 10),
    ("2021-01-01T00:00", "2021-01-01T00:04", "s3://b/x/2.fits", np.int64(20)),
    ("2022-03-01", "2022-03-02", "s3://b/x/3.fits", 0),
]


def test_iso_time_formats():
    t = pd.Timestamp("2021-02-03T04:05:06.789999")
    assert writer.iso_time(t) == "2021-02-03T04:05:06Z"
    assert writer.iso_time(t, ms=True) == "2021-02-03T04:05:06.789Z"
    assert writer.iso_time("2021-02-03T05:05:06+01:00") == "2021-02-03T04:05:06Z"
    with pytest.raises(TimeRangeError):
        writer.iso_time("soon")


def test_index_csv_reads_back():
    text = writer.index_csv(ROWS)
    lines = text.splitlines()
    assert lines[0] == writer.INDEX_HEADER == "# start, stop, datakey, filesize"
    assert lines[1] == "2020-12-31T23:56:00.123Z,2021-01-01T00:00:00.000Z,s3://b/x/1.fits,10"
    assert text.endswith("\n")
    df, bad = parse_index(text.encode(), "mem://index.csv")
    assert bad == []
    assert list(df["datakey"]) == [r[2] for r in ROWS]
    assert list(df["filesize"]) == [10, 20, 0]
    assert df["start"][1] == pd.Timestamp("2021-01-01T00:00")
    assert writer.index_csv([]) == writer.INDEX_HEADER + "\n"


def test_yearly_index_files_are_named_by_index_url():
    files = writer.yearly_index_files("s3://b/idx/", "aia_94", ROWS)
    assert list(files) == [index_url("s3://b/idx/", "aia_94", y) for y in (2020, 2021, 2022)]
    assert [len(t.splitlines()) for t in files.values()] == [2, 2, 2]
    assert "s3://b/x/2.fits" in files["s3://b/idx/aia_94_2021.csv"]


@pytest.mark.parametrize(
    "row",
    [
        ("2021-01-01", "2021-01-01", "s3://b/a,b.fits", 1),
        ("2021-01-01", "2021-01-01", "", 1),
        ("2021-01-01", "2021-01-01", "s3://b/a.fits", -1),
        ("2021-01-01", "2021-01-01", "s3://b/a.fits", 1.5),
        ("2021-01-01", "2021-01-01", "s3://b/a.fits", True),
        ("2021-01-01", "s3://b/a.fits", 1),
    ],
)
def test_bad_rows_are_refused(row):
    with pytest.raises(CatalogFormatError, match="row 1"):
        writer.index_csv([row])


@pytest.mark.parametrize("bad_id", ["aia 94", "", "a/b", None])
def test_dataset_ids_are_checked(bad_id):
    with pytest.raises(CatalogFormatError, match="dataset_id") as info:
        writer.check_dataset_id(bad_id)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HelioError)
    with pytest.raises(CatalogFormatError):
        writer.yearly_index_files("s3://b/idx/", bad_id, ROWS)


def test_bucket_catalog_reads_back_and_keeps_other_datasets():
    def entry(dataset_id, stop="2021-01-02"):
        return writer.dataset_entry(
            dataset_id,
            index="s3://b/idx/",
            title=f"{dataset_id} title",
            start="2021-01-01",
            stop=stop,
            description="synthetic",
            modification="2024-01-01T00:00:00Z",
        )

    first = writer.bucket_catalog("s3://b/", [entry("zeta"), entry("alpha")], name="B")
    assert [d["id"] for d in first["catalog"]] == ["alpha", "zeta"]
    assert first["status"] == {"code": 1200, "message": "OK"}
    assert first["catalog"][0]["start"] == "2021-01-01T00:00:00Z"
    merged = writer.bucket_catalog(
        "s3://b/", [entry("zeta", stop="2021-01-03")], name="B", existing=first
    )
    assert [d["id"] for d in merged["catalog"]] == ["alpha", "zeta"]
    assert merged["catalog"][1]["stop"] == "2021-01-03T00:00:00Z"
    assert writer.bucket_catalog("s3://b/", [], name="B", existing="not a catalog")["catalog"] == []

    bucket = Bucket("s3://b/", merged)
    assert sorted(bucket) == ["alpha", "zeta"]
    assert bucket["zeta"].stop == pd.Timestamp("2021-01-03")
    assert bucket["alpha"].index == "s3://b/idx/" and bucket["alpha"].description == "synthetic"

    with pytest.raises(CatalogFormatError, match="distinct ids"):
        writer.bucket_catalog("s3://b/", [entry("a"), entry("a")], name="B")


def test_registry_json_reads_back():
    doc = writer.registry_json(
        [{"endpoint": "s3://b/", "name": "B", "provider": "local", "region": "local"}],
        modification="2024-01-01T00:00:00Z",
    )
    assert doc["version"] == "1.0" and doc["modificationDate"] == "2024-01-01T00:00:00Z"
    registry = Registry("mem://HelioDataRegistry.json", doc)
    assert registry.endpoint("B") == "s3://b/"
    assert writer.registry_json([])["modificationDate"].endswith("Z")
    with pytest.raises(CatalogFormatError, match="'endpoint' and 'name'"):
        writer.registry_json([{"endpoint": "s3://b/"}])
