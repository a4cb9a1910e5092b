"""The URL policy, URL masking, per-host storage options and the catalog-side settings.

No sockets: pure functions, ``memory://`` and bytes in memory.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib

import aiohttp
import dask
import numpy as np
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import intake_helio as ih
from intake_helio.base.settings import SettingsError, catalog_settings, current
from intake_helio.catalog.index import index_url, parse_index
from intake_helio.io.storage import (
    ContentTooLargeError,
    StorageOptions,
    is_no_credentials,
    mask_url,
    options_for,
    origin,
    redact,
    scope_options,
    shown,
)
from intake_helio.io.urlpolicy import (
    UrlNotAllowedError,
    UrlPolicy,
    check_dataset_id,
    resolve_prefix,
)
from tests.builders import catalog_json, dataset_entry, index_csv, make_rows, put

CANARY = "canary-pass-7f3e9d"
POLICY = UrlPolicy()


@pytest.fixture(autouse=True)
def clean_memory():
    MemoryFileSystem.store.clear()
    yield
    MemoryFileSystem.store.clear()


# --------------------------------------------------------------------------- the policy
@pytest.mark.parametrize(
    "url, referrer",
    [
        ("s3://any-bucket/key.fits", "https://elsewhere.org/catalog.json"),
        ("S3://Bucket/key", None),
        ("https://any.host.org/x.csv", "s3://bucket/catalog.json"),
        ("http://127.0.0.1:8000/bkt/idx/", "http://127.0.0.1:8000/bkt/catalog.json"),
        ("http://example.org:80/x", "http://u:p@EXAMPLE.org/catalog.json"),  # same origin
        ("memory://other/x", "memory://bucket/catalog.json"),  # one in-process namespace
    ],
)
def test_allowed_urls(url, referrer):
    assert POLICY.refusal(url, referrer) is None
    assert POLICY.check(url, referrer) == url
    assert POLICY.allowed_mask([url], referrer).tolist() == [True]


@pytest.mark.parametrize(
    "url, referrer, why",
    [
        ("filecache::s3://bucket/key", "s3://bucket/catalog.json", "chained"),
        ("s3://bucket/a::b", None, "chained"),
        ("file:///etc/passwd", "file:///data/catalog.json", "file:// URL"),
        ("http://127.0.0.1:9000/x", "http://127.0.0.1:8000/catalog.json", "127.0.0.1:9000"),
        ("http://evil.example.org/x", "s3://bucket/catalog.json", "evil.example.org"),
        ("ftp://host/x", "s3://bucket/catalog.json", "ftp://host"),
        ("memory://bucket/x", "s3://bucket/catalog.json", "memory://bucket"),
        ("relative/key.fits", "s3://bucket/idx/x.csv", "not an absolute URL"),
        ("", None, "empty"),
        ("s3://bucket/\nkey", None, "control characters"),
        (42, None, "found int"),
    ],
)
def test_refused_urls(url, referrer, why):
    reason = POLICY.refusal(url, referrer)
    assert reason is not None and why in reason, reason
    with pytest.raises(UrlNotAllowedError, match="URL not allowed") as err:
        POLICY.check(url, referrer, "datakey")
    assert isinstance(err.value, ih.CatalogFormatError) and isinstance(err.value, ValueError)
    assert err.value.reason == ih.Reason.URL_NOT_ALLOWED
    if isinstance(url, str):
        assert POLICY.allowed_mask([url], referrer).tolist() == [False]


def test_refusals_never_quote_the_url_path_or_credentials():
    url = f"http://user:{CANARY}@evil.example.org/{CANARY}/x.fits?token={CANARY}"
    reason = POLICY.refusal(url, "s3://bucket/catalog.json")
    assert "evil.example.org" in reason and CANARY not in reason
    with pytest.raises(UrlNotAllowedError) as err:
        POLICY.check(url, f"https://u:{CANARY}@host/catalog.json", "datakey")
    assert CANARY not in str(err.value) and "https://***@host/catalog.json" in str(err.value)
    weird = "\x1b]0;pwned\x07gopher://" + "x" * 500
    assert "\x1b" not in POLICY.refusal(weird) and len(POLICY.refusal(weird)) < 300


# --------------------------------------------------------------------------- internal hosts
INTERNAL = [
    ("https://127.0.0.1:8443/x.fits", "loopback"),
    ("https://localhost/x", "loopback"),
    ("https://LocalHost/x", "loopback"),
    ("https://localhost./x", "loopback"),
    ("https://api.localhost/x", "loopback"),
    ("https://0x7f.1/x", "loopback"),
    ("https://2130706433/x", "loopback"),
    ("https://127.1/x", "loopback"),
    ("https://0177.0.0.1/x", "loopback"),
    ("https://127.0.0.1./x", "loopback"),
    ("https://user@127.0.0.1/x", "loopback"),
    ("https://evil.example.org@127.0.0.1/x", "loopback"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/x", "loopback"),  # full-width
    ("https://[::1]/x", "loopback"),
    ("https://[::1]:8443/x", "loopback"),
    ("https://[::ffff:127.0.0.1]/x", "loopback"),
    ("https://[::ffff:7f00:1]/x", "loopback"),
    ("https://[2002:7f00:1::]/x", "loopback"),  # 6to4 around 127.0.0.1
    ("https://0.0.0.0/x", "unspecified"),
    ("https://0/x", "unspecified"),
    ("https://[::]/x", "unspecified"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fe80::1]/x", "link-local"),
    ("https://10.0.0.1/x", "private"),
    ("https://10.255.255.255/x", "private"),
    ("https://012.1/x", "private"),  # octal 10.0.0.1
    ("https://172.16.0.1/x", "private"),
    ("https://172.31.255.254/x", "private"),
    ("https://192.168.1.1/x", "private"),
    ("https://0xc0a80101/x", "private"),
    ("https://[fc00::1]/x", "private"),
    ("https://[fd12:3456::1]/x", "private"),
    ("https://[::ffff:10.0.0.1]/x", "private"),
    ("https://224.0.0.1/x", "multicast"),
    ("https://[ff02::1]/x", "multicast"),
    ("https://240.0.0.1/x", "reserved"),
    ("https://100.64.0.1/x", "non-public"),  # shared address space (carrier NAT)
]


@pytest.mark.parametrize("url, category", INTERNAL)
@pytest.mark.parametrize("referrer", ["s3://bucket/catalog.json", "https://example.org/c.json"])
def test_internal_hosts_are_refused_in_every_spelling(url, category, referrer):
    reason = POLICY.refusal(url, referrer)
    article = "an" if category[0] in "aeiou" else "a"
    assert reason is not None and f"is https:// on {article} {category} address" in reason
    assert POLICY.allowed_mask([url], referrer).tolist() == [False]
    with pytest.raises(UrlNotAllowedError, match="URL not allowed.*index.*https://") as err:
        POLICY.check(url, referrer, "index")
    assert err.value.reason == ih.Reason.URL_NOT_ALLOWED


def test_internal_refusals_never_echo_credentials_or_paths():
    url = f"https://user:{CANARY}@127.0.0.1:8443/{CANARY}/x.fits?token={CANARY}"
    reason = POLICY.refusal(url, "s3://bucket/catalog.json")
    assert "loopback" in reason and "https://127.0.0.1:8443" in reason and CANARY not in reason
    with pytest.raises(UrlNotAllowedError) as err:
        POLICY.check(url, f"https://u:{CANARY}@example.org/catalog.json", "datakey")
    assert CANARY not in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/x.fits",
        "https://example.org/x.fits",
        "https://EXAMPLE.org:8443/x.fits",
        "https://172.32.0.1/x",  # just outside 172.16/12
        "https://11.0.0.1/x",
        "https://0x5db8d822/x",  # 93.184.216.34 as one hexadecimal number
        "https://[2606:4700:4700:0:0:0:0:1111]/x",  # ('::' in a URL is an fsspec chain)
        "https://localhost.example.org/x",  # a name: not resolved by the policy
        "https://127.0.0.1.example.org/x",
    ],
)
def test_public_https_hosts_stay_allowed(url):
    assert POLICY.refusal(url, "s3://bucket/catalog.json") is None
    assert POLICY.allowed_mask([url], "s3://bucket/catalog.json").tolist() == [True]


def test_s3_bucket_names_are_not_hosts():
    assert POLICY.refusal("s3://localhost/x", "s3://b/catalog.json") is None
    assert POLICY.refusal("s3://127.0.0.1/x", None) is None


@pytest.mark.parametrize(
    "url, referrer",
    [
        ("https://127.0.0.1:8443/idx/x.fits", "https://127.0.0.1:8443/bkt/catalog.json"),
        ("https://0x7f.1:8443/idx/x.fits", "https://127.0.0.1:8443/bkt/catalog.json"),
        ("https://localhost/x", "https://u:p@LOCALHOST:443/catalog.json"),
        ("https://10.0.0.5/x", "https://10.0.0.5/catalog.json"),
        ("https://[0:0:0:0:0:0:0:1]:8443/x", "https://[::1]:8443/catalog.json"),
        ("http://127.0.0.1:8000/idx/", "http://127.0.0.1:8000/catalog.json"),  # as before
    ],
)
def test_internal_hosts_on_the_documents_own_origin_are_allowed(url, referrer):
    assert POLICY.refusal(url, referrer) is None
    assert POLICY.allowed_mask([url], referrer).tolist() == [True]


@pytest.mark.parametrize(
    "url, referrer",
    [
        ("https://127.0.0.1:8444/x", "https://127.0.0.1:8443/catalog.json"),  # another port
        ("https://127.0.0.1:8443/x", "http://127.0.0.1:8443/catalog.json"),  # another scheme
        ("https://10.0.0.6/x", "https://10.0.0.5/catalog.json"),
    ],
)
def test_internal_hosts_of_another_origin_are_refused(url, referrer):
    assert "address, not allowed" in POLICY.refusal(url, referrer)
    assert POLICY.allowed_mask([url], referrer).tolist() == [False]


def test_allowed_hosts_let_internal_origins_through():
    with dask.config.set(
        {"intake_helio.url-policy.allowed-hosts": ["https://127.0.0.1:8443", "https://localhost"]}
    ):
        policy = UrlPolicy.current()
        for url in (
            "https://127.0.0.1:8443/x",
            "https://2130706433:8443/x",
            "https://127.1:8443/x",
            "https://localhost/x",
            "https://localhost./x",
        ):
            assert policy.refusal(url, "s3://b/catalog.json") is None, url
            assert policy.allowed_mask([url], "s3://b/catalog.json").tolist() == [True], url
        assert policy.refusal("https://127.0.0.1:8444/x", "s3://b/catalog.json") is not None
        assert policy.refusal("https://169.254.169.254/x", "s3://b/catalog.json") is not None


def test_allowed_mask_mixes_internal_and_public_rows():
    urls = pd.Series(
        ["https://example.org/a.fits", "https://127.0.0.1:9/b.fits", "s3://bkt/c.fits"] * 1000
        + ["https://0x7f.1:9/d.fits", "https://[::1]:9/e.fits", "HTTPS://10.1.2.3/f.fits"]
    )
    ok = POLICY.allowed_mask(urls, "s3://bkt/catalog.json")
    assert ok.tolist() == [True, False, True] * 1000 + [False, False, False]


def test_parse_index_refuses_internal_datakeys_as_url_not_allowed():
    rows = make_rows("2020-01-01", 3)
    rows[1][2] = "https://127.1:8443/y.fits"
    rows[2][2] = "https://169.254.169.254/latest/meta-data/"
    data = index_csv(rows).encode()
    df, bad = parse_index(data, "s3://bkt/idx/x_2020.csv", policy=POLICY, keep_refused=True)
    assert bad == [] and len(df) == 3
    assert df["refused"].iloc[0] == ""
    for why in df["refused"].iloc[1:]:
        assert why.startswith("URL not allowed: datakey") and "address, not allowed" in why
    with pytest.raises(ih.IndexParseError, match="URL not allowed.*loopback"):
        parse_index(data, "s3://bkt/idx/x_2020.csv", policy=POLICY)


def test_settings_opt_in_hosts_and_schemes():
    url = "http://127.0.0.1:9000/idx/"
    assert UrlPolicy.current().refusal(url, "s3://b/catalog.json") is not None
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": ["HTTP://127.0.0.1:9000/"]}):
        assert UrlPolicy.current().refusal(url, "s3://b/catalog.json") is None
        assert UrlPolicy.current().refusal("http://127.0.0.1:9001/", None) is not None
    with dask.config.set({"intake_helio.url-policy.allowed-schemes": ["s3"]}):
        assert UrlPolicy.current().refusal("https://host/x", None) is not None
    with dask.config.set({"intake_helio.url-policy.allowed-schemes": ["s3", "https", "gs"]}):
        assert UrlPolicy.current().refusal("gs://bucket/x", None) is None


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("url-policy.allowed-hosts", ["127.0.0.1:9000"], "scheme://host:port"),
        ("url-policy.allowed-hosts", ["http://h/path"], "scheme://host:port"),
        ("url-policy.allowed-schemes", ["s3://"], "allowed-schemes"),
        ("limits.json-bytes", "lots", "number of bytes"),
        ("limits.index-bytes", 0, ">= 1"),
        ("timeouts.read", 0, "seconds > 0"),
        ("timeouts.attempts", 0, ">= 1"),
    ],
)
def test_catalog_settings_are_checked(key, value, match):
    with dask.config.set({f"intake_helio.{key}": value}):
        with pytest.raises(SettingsError, match=match):
            catalog_settings()
        with pytest.raises(SettingsError):
            current()


def test_catalog_settings_defaults_and_units():
    cs = catalog_settings()
    assert cs.max_json_bytes == 64 * 2**20 and cs.max_index_bytes == 512 * 2**20
    assert cs.allowed_schemes == ("s3", "https") and cs.allowed_hosts == ()
    with dask.config.set({"intake_helio.limits.json-bytes": "1 KiB"}):
        assert catalog_settings().max_json_bytes == 1024
    assert current().catalog.read_timeout == cs.read_timeout


# --------------------------------------------------------------------------- prefixes and ids
ROOT = "s3://bucket/"
CAT = ROOT + "catalog.json"
WEB_ROOT = "https://host.org/data/bkt/"


@pytest.mark.parametrize(
    "ref, catalog, root, expected",
    [
        ("./sub/", CAT, ROOT, "s3://bucket/sub/"),
        ("sub/deeper", CAT, ROOT, "s3://bucket/sub/deeper/"),
        ("/sub/", CAT, ROOT, "s3://bucket/sub/"),
        ("./a/../b/", CAT, ROOT, "s3://bucket/b/"),
        ("./", CAT, ROOT, "s3://bucket/"),
        ("./idx/", WEB_ROOT + "catalog.json", WEB_ROOT, WEB_ROOT + "idx/"),
        ("s3://other-bucket/idx", CAT, ROOT, "s3://other-bucket/idx/"),
        ("https://else.org/idx/", CAT, ROOT, "https://else.org/idx/"),
    ],
)
def test_resolve_prefix(ref, catalog, root, expected):
    assert resolve_prefix(ref, catalog, root, POLICY) == expected


@pytest.mark.parametrize(
    "ref, catalog, root, why",
    [
        ("../", CAT, ROOT, "climbs above"),
        ("./a/../../x/", CAT, ROOT, "climbs above"),
        ("../other/", WEB_ROOT + "catalog.json", WEB_ROOT, "leaves the bucket root"),
        ("/other/", WEB_ROOT + "catalog.json", WEB_ROOT, "leaves the bucket root"),
        ("%2e%2e/", CAT, ROOT, "percent-encoded"),
        ("//evil.org/idx/", CAT, ROOT, "network-path"),
        ("..\\..\\etc\\", CAT, ROOT, "backslash"),
        ("file:///etc/", CAT, ROOT, "file:// URL"),
        ("filecache::s3://bucket/idx/", CAT, ROOT, "chained"),
        ("http://127.0.0.1:1/idx/", CAT, ROOT, "127.0.0.1:1"),
        ("sub/?x=1", CAT, ROOT, "'?'"),
    ],
)
def test_resolve_prefix_refusals(ref, catalog, root, why):
    with pytest.raises(UrlNotAllowedError, match="URL not allowed") as err:
        resolve_prefix(ref, catalog, root, POLICY)
    assert why in str(err.value)


@pytest.mark.parametrize("good", ["aia_0094", "AIA-0094", "mms1 feeps brst", "x", 42])
def test_good_dataset_ids(good):
    assert check_dataset_id(good, "here") == str(good)


@pytest.mark.parametrize(
    "bad", ["../x", "a/b", "a?b", "a#b", "aia:0094", "ü", "", "   ", "x" * 201, None, True, [1]]
)
def test_bad_dataset_ids_are_refused_without_quoting(bad):
    with pytest.raises(UrlNotAllowedError) as err:
        check_dataset_id(bad, "catalog[3]")
    assert "catalog[3]" in str(err.value)
    if isinstance(bad, str) and len(bad) > 2:
        assert bad not in str(err.value)


def test_spaces_in_ids_are_quoted_in_http_index_urls():
    assert index_url("https://h/idx/", "mms1 feeps", 2020) == "https://h/idx/mms1%20feeps_2020.csv"
    assert index_url("s3://b/idx/", "mms1 feeps", 2020) == "s3://b/idx/mms1 feeps_2020.csv"


def test_bucket_skips_and_reports_bad_datasets_and_keeps_the_others():
    entries = [
        dataset_entry("good"),
        dataset_entry("../../escape"),
        dataset_entry("far", index="file:///etc/"),
        dataset_entry("chain", index="filecache::s3://bucket/registries/"),
        dataset_entry("future", start="2300-01-01"),
        dataset_entry("past", stop="0001-01-01T00:00Z"),
        dataset_entry("up", index="../other/"),
        "not an object",
    ]
    put("memory://bucket/catalog.json", catalog_json("memory://bucket/", entries))
    with pytest.warns(ih.HelioWarning, match="skipped 7 dataset") as caught:
        bucket = ih.open_bucket("memory://bucket/")
    assert "escape" not in str(caught[0].message)
    assert list(bucket) == ["good"]
    assert sorted(bucket.invalid) == sorted(
        ["catalog[1]", "far", "chain", "future", "past", "up", "catalog[7]"]
    )
    for name in ("far", "chain", "up"):
        assert bucket.invalid[name].startswith("URL not allowed"), bucket.invalid[name]
    assert "outside" not in bucket.invalid["future"]  # catalog times: usable or not
    with pytest.raises(ih.CatalogFormatError, match="'future'.*skipped.*start is not a usable"):
        bucket["future"]
    assert "future" not in bucket and bucket.get("future") is None
    assert "skipped=7" in repr(bucket)
    rows = make_rows("2020-01-01", 3)
    put("memory://bucket/registries/good_2020.csv", index_csv(rows))
    assert len(bucket["good"].files("2020-01-01", "2020-01-02")) == 3


# --------------------------------------------------------------------------- index rows
def test_out_of_range_and_bad_values_are_bad_rows_with_file_and_line():
    rows = make_rows("2020-01-01", 11)
    rows[1][0] = "2300-01-01T00:00:00Z"  # start past 2262
    rows[2][1] = "0001-01-01T00:00:00Z"  # stop before 1677
    rows[3][3] = "inf"
    rows[4][3] = "-1"
    rows[5][3] = "1.5"
    rows[6][3] = "1e30"
    rows[7][3] = "99999999999999999999999999"
    rows[8][2] = f"http://user:{CANARY}@evil.example.org/{CANARY}.fits"
    rows[9][2] = "file:///etc/passwd"
    rows[10][2] = "filecache::s3://bucket/x.fits"
    text = index_csv(rows)
    df, bad = parse_index(text.encode(), "s3://bucket/idx/x_2020.csv", errors="report")
    assert df["datakey"].tolist() == [rows[0][2]]
    assert [b.line for b in bad] == list(range(3, 13))
    reasons = [b.reason for b in bad]
    assert "start ('2300-01-01T00:00:00Z', a 20-byte value) is outside" in reasons[0]
    assert reasons[1].startswith("stop (") and "outside 1677-09-22 to 2262-04-11" in reasons[1]
    assert [r.split(")")[1].split(";")[0] for r in reasons[2:7]] == [
        " is not finite",
        " is negative",
        " is not a whole number",
        " is larger than 2**53",
        " is larger than 2**53",
    ]
    for r in reasons[7:]:
        assert r.startswith("URL not allowed: datakey"), r
    assert "evil.example.org" in reasons[7] and CANARY not in "".join(reasons)
    assert all(b.file == "s3://bucket/idx/x_2020.csv" for b in bad)
    with pytest.raises(ih.IndexParseError, match="x_2020.csv line 3: start") as err:
        parse_index(text.encode(), "s3://bucket/idx/x_2020.csv")
    assert err.value.line == 3


def test_parquet_out_of_range_times_and_sizes_are_bad_rows():
    table = pd.DataFrame(
        {
            "start": ["2020-01-01T00:00:00Z", "2300-01-01T00:00:00Z", "2020-01-01T00:08:00Z"],
            "stop": ["2020-01-01T00:04:00Z", "2300-01-01T00:04:00Z", "2020-01-01T00:12:00Z"],
            "datakey": ["s3://b/a", "s3://b/b", "s3://b/c"],
            "filesize": np.array([10, 20, -30], dtype=np.int64),
        }
    )
    buf = io.BytesIO()
    table.to_parquet(buf)
    df, bad = parse_index(buf.getvalue(), "s3://b/x.parquet", "parquet", errors="report")
    assert df["datakey"].tolist() == ["s3://b/a"]
    assert [(b.line, b.reason.split()[0]) for b in bad] == [(2, "start"), (3, "filesize")]


def test_a_datakey_on_the_index_host_or_a_trusted_host_is_allowed():
    rows = make_rows("2020-01-01", 3)
    rows[0][2] = "http://127.0.0.1:8000/bkt/data/a.fits"
    rows[1][2] = "http://127.0.0.1:9000/b.fits"
    idx = "http://127.0.0.1:8000/bkt/idx/x_2020.csv"
    df, bad = parse_index(index_csv(rows).encode(), idx, errors="report")
    assert df["datakey"].tolist() == [rows[0][2], rows[2][2]] and [b.line for b in bad] == [3]
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": ["http://127.0.0.1:9000"]}):
        df, bad = parse_index(index_csv(rows).encode(), idx, errors="report")
    assert len(df) == 3 and bad == []


def test_messages_of_malformed_files_never_quote_their_content():
    text = f"# start, {CANARY}, datakey\n2020-01-01,x,s3://b/a\n2020-01-01,s3://b/a,1,2,3\n"
    with pytest.raises(ih.IndexParseError, match="line 3: wrong number of fields") as err:
        parse_index(text.encode(), "s3://b/x.csv")
    assert CANARY not in str(err.value)
    with pytest.raises(ih.IndexParseError, match="no 'datakey' column") as err:
        parse_index(f"start,{CANARY}\n2020-01-01,x\n".encode(), "s3://b/x.csv")
    assert CANARY not in str(err.value)
    put("memory://reg/bad.json", f'{{"version": "1", "registry": "{CANARY}"')
    with pytest.raises(ih.CatalogFormatError, match=r"not valid JSON \(\d+ bytes") as err:
        ih.open_registry("memory://reg/bad.json")
    assert CANARY not in str(err.value)


def _zip_one(comp: bytes, usize: int, crc: int = 0, name: bytes = b"x.csv") -> bytes:
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(comp), usize, len(name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        *(0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(comp), usize, len(name)),
        *(0, 0, 0, 0, 0, 0),
    )
    local, central = local + name, central + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(comp), 0)
    return local + comp + central + end


def test_csv_zip_member_limit_from_the_header_and_lying_headers():
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = c.compress(bytes(4 << 20)) + c.flush()  # 4 MiB of zeros in ~4 KiB
    with dask.config.set({"intake_helio.limits.index-expanded-bytes": "1 MiB"}):
        with pytest.raises(ContentTooLargeError, match="header says 4194304 bytes") as err:
            parse_index(_zip_one(comp, 4 << 20), "s3://b/x.csv.zip", "csv-zip")
        assert "index-expanded-bytes" in str(err.value)
        # a header that lies (1 KiB) stops the expansion there: a bad archive, not 4 MiB
        with pytest.raises(ih.IndexParseError, match="not a readable zip archive"):
            parse_index(_zip_one(comp, 1024), "s3://b/x.csv.zip", "csv-zip")


def test_parquet_expanded_limit():
    buf = io.BytesIO()
    pd.DataFrame(
        {"start": ["2020-01-01"] * 5000, "datakey": ["s3://b/" + "k" * 200] * 5000}
    ).to_parquet(buf)
    with (
        dask.config.set({"intake_helio.limits.index-expanded-bytes": 10_000}),
        pytest.raises(ContentTooLargeError, match="parquet data expands to about"),
    ):
        parse_index(buf.getvalue(), "s3://b/x.parquet", "parquet")


def test_json_limit_and_nesting_on_memory():
    put("memory://reg/big.json", json.dumps({"version": "1", "registry": [], "pad": "x" * 5000}))
    with (
        dask.config.set({"intake_helio.limits.json-bytes": 4096}),
        pytest.raises(ContentTooLargeError, match="has more than 4096 bytes"),
    ):
        ih.open_registry("memory://reg/big.json")
    put("memory://reg/deep.json", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(ih.CatalogFormatError, match="nested too deeply to parse"):
        ih.open_registry("memory://reg/deep.json")


# --------------------------------------------------------------------------- masking
@pytest.mark.parametrize(
    "url, masked",
    [
        (f"http://user:{CANARY}@host:8000/x", "http://***@host:8000/x"),
        (f"s3://AKIAKEY:{CANARY}@bucket/", "s3://***@bucket/"),
        (f"https://u:p@ss{CANARY}@host/", "https://***@host/"),  # an '@' in the password
        (
            f"https://b.s3.amazonaws.com/k?X-Amz-Credential={CANARY}&X-Amz-Signature={CANARY}&a=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&a=1",
        ),
        (
            f"see 'http://u:{CANARY}@h/' and s3://k:{CANARY}@b/",
            "see 'http://***@h/' and s3://***@b/",
        ),
        ("s3://bucket/key", "s3://bucket/key"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert CANARY not in shown(url)


def test_redact_masks_urls_inside_nested_strings():
    value = {
        "endpoint": f"http://u:{CANARY}@h/",
        "args": [f"s3://k:{CANARY}@b/", 3],
        "headers": {"Authorization": CANARY},
    }
    out = redact(value)
    assert CANARY not in repr(out)
    assert out["endpoint"] == "http://***@h/" and out["args"] == ["s3://***@b/", 3]
    assert CANARY not in repr(StorageOptions({"https://h": {"headers": {"X-Token": CANARY}}}))


def test_origin():
    assert (
        origin("HTTP://u:p@Example.org:80/x")
        == origin("http://example.org/")
        == ("http://example.org")
    )
    assert origin("https://h:8443/") == "https://h:8443"
    assert origin("s3://bucket/key") == "s3://bucket"
    assert origin("http://[::1]:8000/x") == "http://[::1]:8000"
    assert origin("relative/path") is None and origin(None) is None


# --------------------------------------------------------------------------- options per host
def test_http_credentials_are_bound_to_the_users_host():
    so = {
        "s3": {"anon": True},
        "https": {
            "headers": {"Authorization": CANARY},
            "client_kwargs": {"auth": ("u", CANARY), "trust_env": True},
            "block_size": 0,
        },
    }
    scoped = scope_options(so, "https://catalog.example.org/bkt/catalog.json")
    assert so["https"]["headers"] == {"Authorization": CANARY}  # the input is not changed
    mine = options_for("https://catalog.example.org/bkt/idx/x.csv", scoped)
    assert mine["headers"] == {"Authorization": CANARY} and mine["block_size"] == 0
    assert mine["client_kwargs"]["auth"] == ("u", CANARY)
    other = options_for("https://other.example.org/idx/x.csv", scoped)
    assert "headers" not in other and "auth" not in other["client_kwargs"]
    assert other["client_kwargs"]["trust_env"] is True and other["block_size"] == 0
    assert options_for("s3://b/k", scoped, defaults=False) == {"anon": True}
    # a catalog on S3: http(s) credentials reach no host named by content
    on_s3 = scope_options(so, "s3://bucket/catalog.json")
    assert "headers" not in options_for("https://catalog.example.org/x", on_s3)
    # idempotent, picklable, and explicit origin keys are kept and used
    assert scope_options(scoped, "https://catalog.example.org/bkt/catalog.json") == scoped
    again = scope_options(scoped, "https://other.example.org/")  # another URL the user gave:
    assert again == {**scoped, "https://other.example.org": {}}  # its origin is recorded only
    pickle.loads(pickle.dumps(StorageOptions(scope_options({"https": {"headers": {}}}, "x"))))
    explicit = {"https://other.example.org": {"headers": {"X-Token": "t"}}, "anon": True}
    assert options_for("https://other.example.org:443/a", explicit)["headers"] == {"X-Token": "t"}
    assert "headers" not in options_for("https://third.org/a", explicit)
    assert options_for("s3://b/k", explicit, defaults=False) == {"anon": True}


def test_default_timeouts_unless_given():
    s3 = options_for("s3://b/k", {"anon": True})
    assert s3["config_kwargs"]["connect_timeout"] == 10
    assert s3["config_kwargs"]["read_timeout"] == 30
    assert s3["config_kwargs"]["retries"] == {"total_max_attempts": 3}
    own = {"config_kwargs": {"read_timeout": 5, "retries": {"mode": "standard"}}}
    s3 = options_for("s3://b/k", own)
    assert s3["config_kwargs"]["read_timeout"] == 5
    assert s3["config_kwargs"]["retries"] == {"mode": "standard"}
    assert own == {"config_kwargs": {"read_timeout": 5, "retries": {"mode": "standard"}}}
    with dask.config.set({"intake_helio.timeouts.read": 2.5, "intake_helio.timeouts.connect": 1}):
        timeout = options_for("https://h/x", None)["client_kwargs"]["timeout"]
    assert timeout.sock_read == 2.5 and timeout.sock_connect == 1 and timeout.total is None
    mine = aiohttp.ClientTimeout(total=3)
    assert (
        options_for("https://h/x", {"https": {"client_kwargs": {"timeout": mine}}})[
            "client_kwargs"
        ]["timeout"]
        is mine
    )
    assert options_for("memory://b/k", {"memory": {}}) == {}


def test_is_no_credentials_walks_the_cause_chain():
    class NoCredentialsError(Exception):
        pass

    try:
        try:
            raise NoCredentialsError("Unable to locate credentials")
        except NoCredentialsError as exc:
            raise OSError("wrapped") from exc
    except OSError as outer:
        assert is_no_credentials(outer)
    assert not is_no_credentials(OSError("x")) and not is_no_credentials(None)
