"""Notebook and plain reprs, explicit ``to_dataarray`` keywords, registry keys, messages.

No sockets: records are built directly or from local files.
"""

from __future__ import annotations

import html
import inspect
import json

import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.catalog.records import version_of
from intake_helio.catalog.registry import Bucket, Dataset, Registry

EVIL = "<script>alert('x')</script>&"
SECRET = "s3cr3t-canary"


def _entry(i: int, **extra) -> dict:
    return {
        "id": f"aia_{i:04d}",
        "index": "s3://bucket/idx/",
        "title": f"AIA {i} {EVIL}",
        "start": "2019-06-01T00:00:00Z",
        "stop": "2021-02-01T00:00:00Z",
        **extra,
    }


def _bucket(n: int = 3, **extra) -> Bucket:
    obj = {"version": "1.0", "name": f"bucket {EVIL}", "catalog": [_entry(i) for i in range(n)]}
    obj.update(extra)
    return Bucket(f"s3://KEY:{SECRET}@bucket/", obj, {"key": "KEY", "secret": SECRET})


def _registry() -> Registry:
    obj = {
        "version": "0.4",
        "modification": "2024-01-01T00:00Z",
        "registry": [
            {"endpoint": "s3://gov-nasa-hdrl-data1/", "name": f"HelioCloud {EVIL}"},
            {"endpoint": "s3://other/", "name": "other", "region": "us-west-2", "provider": "aws"},
        ],
    }
    return Registry(f"https://user:{SECRET}@example.org/reg.json", obj)


def test_bucket_repr_lists_ids_and_truncates():
    assert repr(_bucket(3)).endswith("datasets=3: aia_0000, aia_0001, aia_0002>")
    text = repr(_bucket(25))
    assert "aia_0009, ... (15 more)>" in text and "aia_0010" not in text
    assert SECRET not in text


def test_bucket_html_has_a_table_of_datasets_escaped():
    page = _bucket(3)._repr_html_()
    assert "<script>" not in page and html.escape(EVIL) in page
    assert page.count("<tr>") == 4  # header + 3 datasets
    assert "aia_0002" in page and "2019-06-01T00:00:00" in page and "2021-02-01T00:00:00" in page
    assert SECRET not in page and "s3://***@bucket/" in page


def test_registry_reprs():
    reg = _registry()
    text = repr(reg)
    assert "s3://gov-nasa-hdrl-data1/, s3://other/" in text and SECRET not in text
    page = reg._repr_html_()
    assert "<script>" not in page and SECRET not in page
    assert "us-west-2" in page and "aws" in page and "s3://other/" in page
    assert reg.modification_date == "2024-01-01T00:00Z"


def test_dataset_html_has_fields_and_index_years():
    ds = _bucket(1, catalog=[_entry(1, description=EVIL, contact={"password": SECRET})])["aia_0001"]
    assert ds.index_years == [2019, 2020, 2021]
    page = ds._repr_html_()
    assert "2019-2021" in page and "s3://bucket/idx/" in page and "fits" in page
    assert "<script>" not in page and SECRET not in page
    assert "description" in page


def test_empty_reprs():
    bucket = _bucket(0)
    assert repr(bucket).endswith("datasets=0>")
    assert "<table>" in bucket._repr_html_()


@pytest.mark.parametrize("key", ["version", "Cloudy", "CloudMe", "CloudCatalog"])
def test_every_version_key(key):
    assert version_of({key: "0.1", "registry": []}, "here", "registry", "a registry") == "0.1"


def test_modification_date_key():
    obj = {"CloudCatalog": "0.1", "modificationDate": "2022-01-01T00:00Z", "registry": []}
    assert Registry("https://h/r.json", obj).modification_date == "2022-01-01T00:00Z"


def test_to_dataarray_keywords_are_explicit():
    ds = _bucket(1)["aia_0000"]
    params = inspect.signature(Dataset.to_dataarray).parameters
    for name in ("hdu", "cutout", "header_keys", "units", "on_error", "chunks", "storage_options"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    with pytest.raises(TypeError, match="on_eror"):
        ds.to_dataarray(on_eror="nan")


def test_a_name_instead_of_a_url_says_which_options_were_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    so = {"endpoint_url": "http://127.0.0.1:9", "key": "K", "secret": SECRET}
    with pytest.raises(ih.CatalogNotFoundError) as info:
        ih.open_bucket("helio-demo", so, cache=False)
    msg = str(info.value)
    assert "given: none" not in msg and "endpoint_url" in msg and "http://127.0.0.1:9" in msg
    assert SECRET not in msg and "s3://" in msg


def test_local_catalog_reprs(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_HELIO_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "b"
    root.mkdir()
    obj = {"version": "1.0", "catalog": [_entry(7, index="./idx/")]}
    (root / "catalog.json").write_text(json.dumps(obj))
    bucket = ih.open_bucket(f"file://{root}/")
    assert "aia_0007" in repr(bucket) and "aia_0007" in bucket._repr_html_()
    assert isinstance(bucket["aia_0007"].start, pd.Timestamp)
