import json

import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import intake_helio as ih
from tests.builders import catalog_json, dataset_entry, put

ROOT = "memory://bucket/"


@pytest.fixture(autouse=True)
def clean_memory():
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs.clear()
    MemoryFileSystem.pseudo_dirs.append("")
    yield
    MemoryFileSystem.store.clear()


def registry_json(entries, key="version"):
    return json.dumps({key: "1.0", "modificationDate": "2022-01-01T00:00Z", "registry": entries})


def test_registry_endpoints_and_lookup():
    put(
        "memory://reg/r.json",
        registry_json(
            [
                {
                    "endpoint": "s3://a/",
                    "name": "HelioCloud, including SDO",
                    "provider": "aws",
                    "region": "us-east-1",
                },
                {"endpoint": "s3://b", "name": "Twin", "region": "us-east-1"},
                {"endpoint": "s3://c/", "name": "Twin", "region": "us-west-2"},
            ]
        ),
    )
    reg = ih.open_registry("memory://reg/r.json")
    assert [e.endpoint for e in reg.endpoints] == ["s3://a/", "s3://b/", "s3://c/"]
    assert reg.endpoints[0].provider == "aws" and reg.endpoints[0].region == "us-east-1"
    assert reg.endpoint("HelioCloud, including SDO") == "s3://a/"
    assert reg.endpoint("Twin", region="us-west-2") == "s3://c/"
    with pytest.raises(ValueError, match="2 buckets are named 'Twin'.*region="):
        reg.endpoint("Twin")
    with pytest.raises(KeyError, match="no bucket named 'Helio'.*did you mean") as err:
        reg.endpoint("Helio")
    assert "HelioCloud, including SDO" in str(err.value)


def test_registry_prerelease_key_and_env_default(monkeypatch):
    put("memory://reg/old.json", registry_json([{"endpoint": "s3://x/", "name": "X"}], "CloudMe"))
    monkeypatch.setenv("ROOT_CATALOG_REGISTRY_URL", "memory://reg/old.json")
    reg = ih.open_registry()
    assert reg.url == "memory://reg/old.json" and reg.version == "1.0"


@pytest.mark.parametrize(
    "content, exc, match",
    [
        ("{not json", ih.CatalogFormatError, "not valid JSON"),
        ("[1, 2]", ih.CatalogFormatError, "must hold a JSON object"),
        (json.dumps({"registry": []}), ih.CatalogFormatError, "no 'version'"),
        (json.dumps({"version": "1"}), ih.CatalogFormatError, "'registry'"),
    ],
)
def test_registry_bad_input(content, exc, match):
    put("memory://reg/bad.json", content)
    with pytest.raises(exc, match=match):
        ih.open_registry("memory://reg/bad.json")


def test_registry_entry_without_endpoint_is_skipped_and_reported():
    # one malformed entry no longer hides the others: it is skipped, warned about, listed in
    # .invalid, and looking it up by name raises its error
    put(
        "memory://reg/bad.json",
        json.dumps(
            {
                "version": "1",
                "registry": [{"name": "x"}, {"endpoint": "s3://fine/", "name": "fine"}],
            }
        ),
    )
    with pytest.warns(ih.HelioWarning, match=r"registry\[0\] lacks required key\(s\) 'endpoint'"):
        reg = ih.open_registry("memory://reg/bad.json")
    assert [e.endpoint for e in reg.endpoints] == ["s3://fine/"]
    assert list(reg.invalid) == ["registry[0]"]
    with pytest.raises(ih.CatalogFormatError, match=r"lacks required key\(s\) 'endpoint'"):
        reg.endpoint("x")


def test_registry_missing_file_is_file_not_found():
    with pytest.raises(FileNotFoundError, match="registry memory://reg/none.json does not exist"):
        ih.open_registry("memory://reg/none.json")


def test_bucket_records_and_metadata():
    entry = dataset_entry(
        description="Atmospheric Imaging Assembly",
        multiyear="true",
        collections=["sdo"],
        custom_key=42,
    )
    entry["modification"] = "2023-05-04:00:00:00Z"  # malformed optional field seen live
    put(ROOT + "catalog.json", catalog_json(ROOT, [entry], egress="none"))
    bucket = ih.open_bucket("memory://bucket")  # trailing slash added
    assert bucket.endpoint == ROOT and bucket.name == "Test bucket"
    assert bucket.status == {"code": 1200, "message": "OK"}
    ds = bucket["aia_0094"]
    assert ds.id == "aia_0094" and ds.title == "aia_0094 FITS data"
    assert ds.index == ROOT + "registries/"
    assert ds.start == pd.Timestamp("2019-12-31") and ds.stop == pd.Timestamp("2021-01-02")
    assert ds.filetype == "fits" and ds.indextype == "csv" and ds.multiyear is True
    assert ds.metadata["modification"] == "2023-05-04:00:00:00Z"
    assert ds.metadata["custom_key"] == 42 and ds.metadata["collections"] == ["sdo"]
    assert list(bucket) == ["aia_0094"] and len(bucket.datasets) == 1
    assert bucket.metadata["egress"] == "none"


def test_bucket_old_cloudy_key():
    obj = json.loads(catalog_json(ROOT, [dataset_entry()]))
    del obj["version"]
    obj["Cloudy"] = "0.6"
    put(ROOT + "catalog.json", json.dumps(obj))
    assert ih.open_bucket(ROOT).version == "0.6"


def test_bucket_status_1400():
    put(
        ROOT + "catalog.json",
        catalog_json(
            ROOT, [dataset_entry()], status={"code": 1400, "message": "maintenance until noon"}
        ),
    )
    with pytest.raises(ih.BucketUnavailableError, match="temporarily unavailable.*maintenance"):
        ih.open_bucket(ROOT)


def test_bucket_missing_required_dataset_key():
    entry = dataset_entry()
    del entry["index"]
    put(ROOT + "catalog.json", catalog_json(ROOT, [entry, dataset_entry("other")]))
    # the bad entry is skipped and reported; the rest of the bucket works
    with pytest.warns(ih.HelioWarning, match=r"lacks required key\(s\) 'index'"):
        bucket = ih.open_bucket(ROOT)
    assert list(bucket) == ["other"] and "aia_0094" not in bucket
    with pytest.raises(ih.CatalogFormatError, match=r"lacks required key\(s\) 'index'"):
        bucket["aia_0094"]


def test_bucket_bad_required_time():
    put(
        ROOT + "catalog.json",
        catalog_json(ROOT, [dataset_entry(start="yesterday"), dataset_entry("other")]),
    )
    with pytest.warns(ih.HelioWarning, match="aia_0094.*start is not a usable time"):
        bucket = ih.open_bucket(ROOT)
    assert list(bucket) == ["other"]
    with pytest.raises(ih.CatalogFormatError, match="aia_0094.*start is not a usable time") as e:
        bucket["aia_0094"]
    assert "yesterday" not in str(e.value)  # the value is not quoted, its size is


def test_unknown_dataset_lists_close_matches():
    put(
        ROOT + "catalog.json",
        catalog_json(
            ROOT, [dataset_entry("aia_0094"), dataset_entry("aia_0131"), dataset_entry("euvi")]
        ),
    )
    bucket = ih.open_bucket(ROOT)
    with pytest.raises(KeyError) as err:
        bucket["aia_094"]
    assert "no dataset 'aia_094'" in str(err.value) and "'aia_0094'" in str(err.value)


def test_bucket_search():
    put(
        ROOT + "catalog.json",
        catalog_json(
            ROOT,
            [
                dataset_entry(
                    "aia_0094", start="2010-05-13T00:00:00Z", stop="2022-12-31T23:56:00Z"
                ),
                dataset_entry(
                    "euvi_195",
                    title="STEREO EUVI",
                    description="aia-like",
                    start="2007-01-01",
                    stop="2009-01-01",
                ),
                dataset_entry("mag", title="Magnetometer", start="2015-01-01", stop="2016-01-01"),
            ],
        ),
    )
    bucket = ih.open_bucket(ROOT)
    assert [d.id for d in bucket.search("AIA")] == ["aia_0094", "euvi_195"]
    assert [d.id for d in bucket.search("aia", start="2020-01-01")] == ["aia_0094"]
    assert [d.id for d in bucket.search(None, stop="2008-01-01")] == ["euvi_195"]
    with pytest.raises(ih.TimeRangeError):
        bucket.search("aia", start="2021-01-01", stop="2020-01-01")


def test_registry_search_reports_unreachable_bucket():
    put("memory://good/catalog.json", catalog_json("memory://good/", [dataset_entry("aia_0094")]))
    put(
        "memory://reg/r.json",
        registry_json(
            [
                {"endpoint": "memory://good/", "name": "good"},
                {"endpoint": "memory://gone/", "name": "gone"},
            ]
        ),
    )
    reg = ih.open_registry("memory://reg/r.json", storage_options={})
    with pytest.warns(ih.HelioWarning, match="memory://gone/"):
        res = reg.search("aia")
    assert [d.id for d in res] == ["aia_0094"]
    assert list(res.unreachable) == ["memory://gone/"]
    assert "does not exist" in res.unreachable["memory://gone/"]
    assert list(res.to_dataframe().columns) == [
        "endpoint",
        "id",
        "title",
        "start",
        "stop",
        "filetype",
        "opens_as",
    ]
