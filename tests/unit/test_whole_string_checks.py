"""Checks of content match the whole string: a trailing newline is not let through by ``$``
(issue 26 item 5)."""

from __future__ import annotations

import pytest

import intake_helio as ih
from intake_helio.base.errors import CatalogFormatError
from intake_helio.catalog import writer
from intake_helio.fits import tiles
from intake_helio.io import urlpolicy


@pytest.mark.parametrize("bad", ["aia_0094\n", "aia\n", "\naia", "a\nb"])
def test_dataset_ids_with_a_newline_are_refused(bad):
    with pytest.raises(urlpolicy.UrlNotAllowedError, match="dataset id"):
        urlpolicy.check_dataset_id(bad, "catalog.json")
    with pytest.raises(CatalogFormatError):
        writer.check_dataset_id(bad)


def test_good_ids_still_pass():
    assert urlpolicy.check_dataset_id("aia_0094", "x") == "aia_0094"
    assert writer.check_dataset_id("mms1-feeps_brst") == "mms1-feeps_brst"


def test_a_bucket_skips_a_dataset_whose_id_ends_in_a_newline():
    from fsspec.implementations.memory import MemoryFileSystem

    from tests.builders import catalog_json, dataset_entry, put

    MemoryFileSystem.store.clear()
    try:
        root = "memory://nl/"
        put(root + "catalog.json", catalog_json(root, [dataset_entry("ok"), dataset_entry("ok\n")]))
        with pytest.warns(ih.HelioWarning, match="skipped 1 dataset"):
            bucket = ih.open_bucket(root)
        assert list(bucket) == ["ok"]
    finally:
        MemoryFileSystem.store.clear()


def test_other_anchored_checks_match_the_whole_string():
    assert urlpolicy._ID.match("a\n") is None
    assert urlpolicy._SAFE_ORIGIN.match("s3://bucket\n") is None
    assert urlpolicy._SAFE_ORIGIN.match("s3://bucket")
    assert urlpolicy._INET_ATON.match("127.1\n") is None and urlpolicy._INET_ATON.match("127.1")
    assert tiles._TFORM_RE.match("1PB(100)\n") is None and tiles._TFORM_RE.match("1PB(100)")
    from intake_helio.base import settings

    assert settings._SCHEME.match("s3\n") is None and settings._SCHEME.match("s3")
    assert settings._ORIGIN.match("http://h:1\n") is None and settings._ORIGIN.match("http://h:1")
