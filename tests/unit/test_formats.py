"""A dataset's filetype read as a format, and what is not opened refused before any read."""

from __future__ import annotations

import pytest

import intake_helio as ih
from intake_helio.catalog.formats import check_openable, format_of
from intake_helio.catalog.records import Dataset
from intake_helio.catalog.registry import Bucket, SearchResults
from intake_helio.catalog.reprs import bucket_html, dataset_html


@pytest.mark.parametrize(
    ("filetype", "expected"),
    [
        ("fits", "fits"),
        ("FITS", "fits"),
        (" NetCDF4 ", "netcdf4"),
        ("cdf,csv", "cdf"),
        ("unknown, Fits", "fits"),  # the first KNOWN entry of a list
        ("jpeg", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_filetype_is_read_case_insensitively_first_known_entry(filetype, expected):
    assert format_of(filetype) == expected


def _entry(filetype) -> dict:
    return {
        "id": "mms1_fgm_srvy_l2",
        "index": "s3://no-such-bucket-xyz/mms1_fgm/",
        "title": "MMS1 FGM",
        "start": "2020-01-01T00:00:00Z",
        "stop": "2021-01-01T00:00:00Z",
        "filetype": filetype,
    }


def _dataset(filetype) -> Dataset:
    entry = _entry(filetype)
    # an endpoint no socket can reach: a read would fail with another error than the one tested
    return Dataset.from_entry(
        entry, "s3://no-such-bucket-xyz/", {"endpoint_url": "http://0.0.0.0:9"}
    )


@pytest.mark.parametrize("filetype", ["binary", "other", "datamap", "what,ever", "csv"])
@pytest.mark.parametrize("method", ["to_dataarray", "to_dataset"])
def test_a_dataset_intake_helio_cannot_open_is_refused_before_any_read(filetype, method):
    ds = _dataset(filetype)
    assert ds.opens_as == ""
    with pytest.raises(ih.UnsupportedFormatError) as info:
        getattr(ds, method)("2020-01-01", "2020-01-02")
    text = str(info.value)
    assert f"has filetype {filetype!r}" in text and ".files()" in text
    assert "'fits' as frames" in text and "'cdf', 'netcdf3', 'netcdf4', 'hdf5' as series" in text
    assert isinstance(info.value, ih.HelioError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("filetype", "method", "hint"),
    [
        ("cdf", "to_dataarray", ".to_dataset("),
        ("NetCDF4", "to_dataarray", ".to_dataset("),
        ("fits", "to_dataset", ".to_dataarray("),
    ],
)
def test_each_kind_is_opened_by_its_own_method(filetype, method, hint):
    ds = _dataset(filetype)
    with pytest.raises(ih.UnsupportedFormatError, match=f"open as {ds.opens_as}") as info:
        getattr(ds, method)("2020-01-01", "2020-01-02")
    assert hint in str(info.value)


def test_filetype_can_be_forced_and_is_checked():
    assert check_openable("x", "binary", forced="FITS") == "fits"
    with pytest.raises(ih.UnsupportedFormatError, match=r"filetype='zip'; expected one of 'fits'"):
        check_openable("x", "fits", forced="zip")
    with pytest.raises(ih.UnsupportedFormatError, match="filetype='zip'"):
        _dataset("fits").to_dataarray("2020-01-01", "2020-01-02", filetype="zip")


def test_listings_show_the_filetype_and_what_it_opens_as():
    image, series, other = _dataset("FITS"), _dataset("cdf"), _dataset("binary")
    assert (image.format, image.opens_as) == ("fits", "frames")
    assert (series.format, series.opens_as) == ("cdf", "series")
    df = SearchResults([image, series, other]).to_dataframe()
    assert list(df[["filetype", "opens_as"]].itertuples(index=False, name=None)) == [
        ("FITS", "frames"),
        ("cdf", "series"),
        ("binary", ""),
    ]
    assert "not opened by intake-helio" in dataset_html(other)
    assert ">series<" in dataset_html(series)

    obj = {
        "version": "1.0",
        "name": "b",
        "catalog": [
            _entry("FITS"),
            {**_entry("cdf"), "id": "mms1_fgm"},
            {**_entry("binary"), "id": "raw"},
        ],
    }
    html = bucket_html(Bucket("s3://no-such-bucket-xyz/", obj))
    assert "opens as" in html and html.count(">frames<") == 1 and ">cdf<" in html
    assert html.count(">series<") == 1
