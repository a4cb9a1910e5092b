import datetime as dt

import numpy as np
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import intake_helio as ih
from intake_helio.catalog.index import parse_index
from tests.builders import catalog_json, dataset_entry, index_csv, make_rows, put, zip_bytes

ROOT = "memory://bucket/"
IDX = ROOT + "registries/"


@pytest.fixture(autouse=True)
def clean_memory():
    MemoryFileSystem.store.clear()
    yield
    MemoryFileSystem.store.clear()


def bucket_with(entries, files: dict):
    put(ROOT + "catalog.json", catalog_json(ROOT, entries))
    for name, content in files.items():
        put(IDX + name, content)
    return ih.open_bucket(ROOT)


HEADERS = {
    "hash-spaces": "# start, stop, datakey, filesize",
    "plain": "start,stop,datakey,filesize",
    "none": None,
}


@pytest.mark.parametrize("header", list(HEADERS))
@pytest.mark.parametrize("quote", ['"', "'", ""])
@pytest.mark.parametrize("with_stop", [True, False])
def test_csv_variants(header, quote, with_stop):
    rows = make_rows("2020-03-01T00:00", 5)
    h = HEADERS[header]
    if h and not with_stop:
        h = h.replace(" stop,", "").replace("stop,", "")
    text = index_csv(rows, header=h, quote=quote, stop=with_stop)
    df, bad = parse_index(text.encode(), "mem://x.csv")
    assert bad == []
    assert list(df.columns) == ["start", "stop", "datakey", "filesize"]
    assert df["start"].dtype == "datetime64[ns]" and df["stop"].dtype == "datetime64[ns]"
    assert df["filesize"].dtype == np.int64
    assert df["datakey"].tolist() == [r[2] for r in rows]
    assert df["start"].iloc[1] == pd.Timestamp("2020-03-01T00:04")
    expected_stop = (
        pd.Timestamp("2020-03-01T00:08") if with_stop else pd.Timestamp("2020-03-01T00:04")
    )
    assert df["stop"].iloc[1] == expected_stop
    assert df["filesize"].iloc[2] == 2880 * 102


def test_spec_example_with_single_quotes_and_spaces():
    text = (
        "# start, stop, datakey, filesize\n"
        "'2010-05-08T12:05:30.000Z','2010-05-08T12:06:14.000Z','s3://bucket/a.fts','246000'\n"
    )
    df, _ = parse_index(text.encode(), "x")
    assert df.loc[0, "datakey"] == "s3://bucket/a.fts" and df.loc[0, "filesize"] == 246000
    assert df.loc[0, "stop"] == pd.Timestamp("2010-05-08T12:06:14")


def test_extra_columns_keep_their_names():
    rows = make_rows("2020-03-01", 3, extra=lambda i: f"q{i}")
    text = index_csv(rows, header="# start, stop, datakey, filesize, quality")
    df, _ = parse_index(text.encode(), "x")
    assert list(df.columns) == ["start", "stop", "datakey", "filesize", "quality"]
    assert df["quality"].tolist() == ["q0", "q1", "q2"]


def test_truncated_times_and_timezones():
    text = (
        "start,datakey,filesize\n2017-01-15T23:00Z,s3://b/a,1\n2017-01-16,s3://b/b,2\n"
        "2017-01-16T01:00:00+01:00,s3://b/c,3\n"
    )
    df, _ = parse_index(text.encode(), "x")
    assert df["start"].tolist() == [
        pd.Timestamp("2017-01-15T23:00"),
        pd.Timestamp("2017-01-16"),
        pd.Timestamp("2017-01-16T00:00"),
    ]


def test_bad_row_names_file_and_line():
    text = "# start, stop, datakey, filesize\n\n" + index_csv(
        make_rows("2020-01-01", 2), header=None
    )
    text += '"garbage","2020-01-01T00:00:00Z","s3://b/x","1"\n'
    with pytest.raises(
        ih.IndexParseError, match=r"idx_2020.csv line 5: start \(a 7-byte value\) is not an ISO"
    ) as err:
        parse_index(text.encode(), "idx_2020.csv")
    assert err.value.line == 5 and err.value.path == "idx_2020.csv"
    assert "garbage" not in str(err.value)  # messages never quote the file's content
    assert isinstance(err.value, ValueError)


def test_bad_rows_reported_when_lenient():
    rows = make_rows("2020-01-01", 4)
    rows[1][2] = ""
    rows[2][0] = "2020-13-45T00:00:00Z"
    rows[3][3] = "big"
    df, bad = parse_index(index_csv(rows).encode(), "f.csv", errors="report")
    assert len(df) == 1
    assert [(b.line, b.reason.split()[0]) for b in bad] == [
        (3, "datakey"),
        (4, "start"),
        (5, "filesize"),
    ]


def test_wrong_field_count_names_line():
    text = "start,datakey,filesize\n2020-01-01,s3://b/a,1\n2020-01-02,s3://b/a,1,extra,more\n"
    with pytest.raises(ih.IndexParseError, match="line 3: wrong number of fields"):
        parse_index(text.encode(), "f.csv")


def test_files_sorted_sliced_across_years_with_gaps():
    # 2020 index rotated like the live AIA 94 one; 2021 missing (a gap); 2022 present
    r2020 = make_rows("2020-12-31T23:20", 10)
    rotated = r2020[4:] + r2020[:4]
    r2019 = make_rows("2019-12-31T23:52", 2)
    r2022 = make_rows("2022-01-01", 3)
    bucket = bucket_with(
        [dataset_entry(start="2019-01-01", stop="2022-12-31")],
        {
            "aia_0094_2019.csv": index_csv(r2019),
            "aia_0094_2020.csv": index_csv(rotated),
            "aia_0094_2022.csv": index_csv(r2022),
        },
    )
    ds = bucket["aia_0094"]
    df = ds.files("2019-12-31T23:55", "2021-01-01T00:10")
    assert df["start"].is_monotonic_increasing
    # 2019 row starting 23:52 stops 23:56 >= 23:55: selected (stop >= start_req)
    assert df["datakey"].tolist() == [r2019[0][2], r2019[1][2]] + [r[2] for r in r2020]
    assert df["start"].iloc[-1] == pd.Timestamp("2020-12-31T23:56")
    empty = ds.files("2021-06-01", "2021-07-01")
    assert len(empty) == 0 and list(empty.columns)[:4] == ["start", "stop", "datakey", "filesize"]
    assert len(ds.files("2021-12-31", "2023-01-01")) == 3
    assert len(ds.files()) == 2 + 10 + 3


def test_half_open_rule():
    rows = [
        ["2020-01-01T00:00:00Z", "2020-01-01T00:04:00Z", "s3://b/a", "1"],
        ["2020-01-01T00:04:00Z", "2020-01-01T00:08:00Z", "s3://b/b", "1"],
    ]
    bucket = bucket_with([dataset_entry()], {"aia_0094_2020.csv": index_csv(rows)})
    ds = bucket["aia_0094"]
    assert ds.files("2020-01-01T00:04", "2020-01-01T00:08")["datakey"].tolist() == [
        "s3://b/a",
        "s3://b/b",
    ]
    assert ds.files("2020-01-01T00:00", "2020-01-01T00:04")["datakey"].tolist() == ["s3://b/a"]


@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01",
        "2020-01-01T00:00:00Z",
        dt.datetime(2020, 1, 1),
        np.datetime64("2020-01-01"),
        pd.Timestamp("2020-01-01"),
        pd.Timestamp("2020-01-01T01:00", tz="Europe/Paris"),
        dt.datetime(2019, 12, 31, 19, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ],
)
def test_time_types(value):
    rows = make_rows("2019-12-31T23:00", 60, cadence="2min")
    bucket = bucket_with(
        [dataset_entry()],
        {"aia_0094_2019.csv": index_csv(rows[:30]), "aia_0094_2020.csv": index_csv(rows[30:])},
    )
    df = bucket["aia_0094"].files(start=value, stop="2020-01-01T00:10")
    # a non-multiyear dataset keeps rows in the year of their start: 2019 is not read
    assert df["start"].iloc[0] == pd.Timestamp("2020-01-01T00:00")
    assert len(df) == 5


def test_multiyear_looks_at_earlier_years():
    rows = [["2018-06-01T00:00:00Z", "2020-06-01T00:00:00Z", "s3://b/long.cdf", "10"]]
    bucket = bucket_with(
        [dataset_entry(start="2018-01-01", stop="2021-01-01", multiyear=True)],
        {"aia_0094_2018.csv": index_csv(rows)},
    )
    assert bucket["aia_0094"].files("2020-01-01", "2020-02-01")["datakey"].tolist() == [
        "s3://b/long.cdf"
    ]


def test_csv_zip_and_parquet():
    rows = make_rows("2020-05-01", 3)
    bucket = bucket_with(
        [dataset_entry("z", indextype="csv-zip"), dataset_entry("p", indextype="parquet")],
        {"z_2020.csv.zip": zip_bytes("z_2020.csv", index_csv(rows))},
    )
    pq = pd.DataFrame(
        {
            "start": [r[0] for r in rows],
            "stop": [r[1] for r in rows],
            "datakey": [r[2] for r in rows],
            "filesize": [int(r[3]) for r in rows],
        }
    )
    fs = MemoryFileSystem()
    with fs.open("/bucket/registries/p_2020.parquet", "wb") as f:
        pq.to_parquet(f)
    for name in ("z", "p"):
        df = bucket[name].files("2020-05-01", "2020-05-02")
        assert df["datakey"].tolist() == [r[2] for r in rows]
        assert df["start"].iloc[2] == pd.Timestamp("2020-05-01T00:08")


def test_start_after_stop_and_unparseable():
    bucket = bucket_with([dataset_entry()], {})
    ds = bucket["aia_0094"]
    with pytest.raises(ih.TimeRangeError, match="start=2020-02-01T00:00:00 is not before stop"):
        ds.files("2020-02-01", "2020-01-01")
    with pytest.raises(ih.TimeRangeError, match="start='last tuesday' is not a time"):
        ds.files("last tuesday", "2020-01-01")
    with pytest.raises(ValueError):
        ds.files(start=12345)


def test_missing_index_location():
    bucket = bucket_with([dataset_entry(index="memory://elsewhere/nothing/")], {})
    with pytest.raises(
        FileNotFoundError, match="index location memory://elsewhere/nothing/ does not"
    ):
        bucket["aia_0094"].files("2020-01-01", "2020-02-01")


def test_lenient_files_keep_bad_rows_in_attrs():
    rows = make_rows("2020-01-01", 5)
    rows[2][0] = "not-a-time"
    bucket = bucket_with([dataset_entry()], {"aia_0094_2020.csv": index_csv(rows)})
    with pytest.raises(ih.IndexParseError, match="aia_0094_2020.csv line 4"):
        bucket["aia_0094"].files("2020-01-01", "2020-01-02")
    df = bucket["aia_0094"].files("2020-01-01", "2020-01-02", errors="report")
    assert len(df) == 4
    (b,) = df.attrs["bad_rows"]
    assert b.file == IDX + "aia_0094_2020.csv" and b.line == 4
    assert b.reason.startswith("start (a 10-byte value) is not an ISO 8601 time")
    assert "not-a-time" not in b.reason  # the value itself is not quoted


# --------------------------------------------------------------------------- issue 26 item 5
HEAD4 = "# start, stop, datakey, filesize"


def _lines_index(rows, header=HEAD4):
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def test_wrong_field_counts_are_bad_rows_with_their_lines_under_report():
    r = [",".join(x) for x in make_rows("2020-01-01", 6)]
    rows = [
        r[0],
        r[1] + ",extra",  # line 3: too many
        r[2].rsplit(",", 1)[0],  # line 4: too few (no filesize)
        "",  # line 5: blank, skipped
        r[3],
        "garbage," + r[4].split(",", 1)[1],  # line 7: a bad time (another kind of bad row)
        "a,b",  # line 8: too few
        r[5],
    ]
    df, bad = parse_index(_lines_index(rows), "s3://b/idx/x_2020.csv", errors="report")
    assert df["datakey"].tolist() == [make_rows("2020-01-01", 6)[i][2] for i in (0, 3, 5)]
    assert [(b.line, b.reason.split(" (")[0]) for b in bad] == [
        (3, "wrong number of fields"),
        (4, "wrong number of fields"),
        (7, "start"),
        (8, "wrong number of fields"),
    ]
    assert bad[0].reason == (
        "wrong number of fields (5; expected 4, as in the header or the first row)"
    )
    assert "(3; expected 4" in bad[1].reason and "(2; expected 4" in bad[3].reason
    assert all(b.file == "s3://b/idx/x_2020.csv" for b in bad)


def test_wrong_field_count_raises_naming_file_and_first_bad_line():
    r = [",".join(x) for x in make_rows("2020-01-01", 4)]
    # a bad time on line 4 and too many fields on line 3: line 3 is named
    rows = [r[0], r[1] + ",x", "nope," + r[2].split(",", 1)[1], r[3]]
    with pytest.raises(ih.IndexParseError, match=r"x_2020.csv line 3: wrong number of fields") as e:
        parse_index(_lines_index(rows), "x_2020.csv")
    assert e.value.line == 3 and e.value.path == "x_2020.csv"
    assert "errors='report'" in str(e.value)
    # the other way round: the bad time (line 3) before the short line (line 4)
    rows = [r[0], "nope," + r[1].split(",", 1)[1], "a,b", r[3]]
    with pytest.raises(ih.IndexParseError, match=r"line 3: start") as e:
        parse_index(_lines_index(rows), "x_2020.csv")
    assert e.value.line == 3


def test_quoted_commas_and_missing_extras_are_not_field_count_errors():
    text = (
        "# start, stop, datakey, filesize, note\n"
        '"2020-01-01T00:00Z","2020-01-01T00:04Z","s3://b/a,1.fits","10","x, y"\n'
        '"2020-01-01T00:04Z","2020-01-01T00:08Z","s3://b/b.fits","10"\n'  # no extra: kept
        '"2020-01-01T00:08Z","2020-01-01T00:12Z","s3://b/c.fits"\n'  # no filesize: bad
    )
    df, bad = parse_index(text.encode(), "f.csv", errors="report")
    assert df["datakey"].tolist() == ["s3://b/a,1.fits", "s3://b/b.fits"]
    assert df["note"].iloc[0] == "x, y"
    assert [(b.line, b.reason) for b in bad] == [
        (4, "wrong number of fields (3; expected 4 to 5, as in the header or the first row)")
    ]


def test_stop_before_start_is_a_bad_row():
    rows = make_rows("2020-01-01", 3)
    rows[1][1] = "2019-12-31T23:00:00Z"
    df, bad = parse_index(index_csv(rows).encode(), "f.csv", errors="report")
    assert df["datakey"].tolist() == [rows[0][2], rows[2][2]]
    (b,) = bad
    assert b.line == 3
    assert b.reason == (
        "stop (2019-12-31T23:00:00Z) is before start (2020-01-01T00:04:00Z); expected stop >= start"
    )
    with pytest.raises(ih.IndexParseError, match=r"f.csv line 3: stop .* is before start"):
        parse_index(index_csv(rows).encode(), "f.csv")
    # an empty stop is the start (not before it); equal times are fine
    rows[1][1] = ""
    rows[2][1] = rows[2][0]
    df, bad = parse_index(index_csv(rows).encode(), "f.csv")
    assert len(df) == 3 and bad == []


def test_exact_duplicate_rows_are_one_frame_with_a_warning():
    rows = make_rows("2020-01-01", 4)
    near = list(rows[3])
    near[3] = "1"  # same datakey, another filesize: not an exact duplicate, kept
    text = index_csv([*rows, rows[1], rows[1], rows[2], near])
    bucket = bucket_with([dataset_entry()], {"aia_0094_2020.csv": text})
    with pytest.warns(ih.HelioWarning, match=r"dropped 3 exact duplicate index row\(s\)"):
        df = bucket["aia_0094"].files("2020-01-01", "2020-01-02", errors="report")
    assert df["datakey"].tolist() == [r[2] for r in rows] + [rows[3][2]]
    assert df.attrs["duplicates_dropped"] == 3 and df.attrs["bad_rows"] == []
    with pytest.warns(ih.HelioWarning, match="dropped 3"):  # the strict mode drops them too
        assert len(bucket["aia_0094"].files("2020-01-01", "2020-01-02")) == 5


def test_duplicates_across_years_of_a_multiyear_dataset_are_one_frame(recwarn):
    long = ["2019-12-31T00:00:00Z", "2020-01-02T00:00:00Z", "s3://b/long.cdf", "10"]
    bucket = bucket_with(
        [dataset_entry(start="2019-01-01", stop="2021-01-01", multiyear=True)],
        {"aia_0094_2019.csv": index_csv([long]), "aia_0094_2020.csv": index_csv([long])},
    )
    with pytest.warns(ih.HelioWarning, match=r"dropped 1 exact duplicate.*2019"):
        df = bucket["aia_0094"].files("2020-01-01", "2020-01-02")
    assert df["datakey"].tolist() == ["s3://b/long.cdf"]


def test_no_duplicates_no_warning():
    import warnings

    bucket = bucket_with(
        [dataset_entry()], {"aia_0094_2020.csv": index_csv(make_rows("2020-01-01", 3))}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = bucket["aia_0094"].files("2020-01-01", "2020-01-02")
    assert len(df) == 3 and df.attrs["duplicates_dropped"] == 0
