"""A run's file digest made slice by slice is the digest of the joined keys (as before)."""

import hashlib

import pytest

from intake_helio.app.stores import fingerprint
from intake_helio.base.digest import update_joined


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100])
@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_update_joined_is_the_joined_texts_digest(n, size):
    keys = [f"s3://bucket/aia/{i:06d}.fits" + "é" * (i % 3) for i in range(n)]
    want = hashlib.sha1("\n".join(keys).encode()).hexdigest()
    assert update_joined(hashlib.sha1(), keys, size=size).hexdigest() == want
    assert update_joined(hashlib.sha1(), iter(keys), size=size).hexdigest() == want


def test_the_run_fingerprint_is_unchanged():
    """Saved runs keep their identity: the fingerprint of older versions."""
    keys = [f"s3://b/{i}.fits" for i in range(70_000)]
    old = hashlib.sha1("\n".join(map(str, keys)).encode()).hexdigest()[:16]
    assert fingerprint(keys) == old
    assert fingerprint(keys[:-1]) != old
