"""io.storage.FileSystems: one look-up per origin, the same answers as filesystem()."""

from __future__ import annotations

import pytest

from intake_helio.io.storage import CredentialsInURLError
from intake_helio.io.transport import FileSystems, filesystem

OPTIONS = {
    "s3": {"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9"},
    "s3://other-bucket": {"anon": True},
    "https://example.org": {"headers": {"X-Test": "1"}},
}


@pytest.mark.parametrize(
    "urls",
    [
        ["s3://bucket/a/f1.fits", "s3://bucket/a/f2.fits", "s3://bucket/b/f3.fits"],
        ["s3://bucket/f1.fits", "s3://other-bucket/f2.fits", "s3://bucket/f3.fits"],
        ["https://example.org/x/1.fits", "https://example.org/y/2.fits", "https://a.org/3.fits"],
        ["s3://bucket/f1.fits?versionId=abc", "s3://bucket/f1.fits"],
    ],
)
def test_each_url_gets_what_filesystem_gives_it(urls):
    fs_of = FileSystems(OPTIONS)
    for url in urls:
        fs, path = fs_of(url)
        ref_fs, ref_path = filesystem(url, OPTIONS)
        assert path == ref_path
        assert fs is ref_fs  # fsspec's instance for exactly these options
        assert fs.storage_options == ref_fs.storage_options


def test_one_lookup_per_origin(monkeypatch):
    from intake_helio.io.transport import filesystems as storage

    calls = []
    real = storage.filesystem
    monkeypatch.setattr(storage, "filesystem", lambda url, so: calls.append(url) or real(url, so))
    fs_of = FileSystems(OPTIONS)
    for i in range(5):
        fs_of(f"s3://bucket/f{i}.fits")
        fs_of(f"s3://other-bucket/f{i}.fits")
    fs_of("s3://bucket/f1.fits?versionId=abc")  # a query: looked up on its own
    assert calls == [
        "s3://bucket/f0.fits",
        "s3://other-bucket/f0.fits",
        "s3://bucket/f1.fits?versionId=abc",
    ]


def test_credentials_in_an_s3_url_are_refused_every_time():
    fs_of = FileSystems(OPTIONS)
    fs_of("s3://bucket/f0.fits")
    for _ in range(2):
        with pytest.raises(CredentialsInURLError):
            fs_of("s3://KEY:SECRET@bucket/f1.fits")
