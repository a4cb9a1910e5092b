"""The one table from exceptions to reasons (io/failures.py) and the one filesize rule."""

from __future__ import annotations

import errno
import zlib

import pytest

from intake_helio.base.errors import FrameReadError, HelioError
from intake_helio.io.failures import reason_for
from intake_helio.io.transport import RedirectRefusedError

#: An error named as botocore's (the table knows it by its name, in any package)
NoCredentialsError = type("NoCredentialsError", (Exception,), {})

ROWS = [
    # (error, reason, reason while decoding)
    (FrameReadError("s3://b/k", "quality flag 0x00000400"), "quality flag 0x00000400", None),
    (RedirectRefusedError("redirect 1 from x to y"), "URL not allowed", None),
    (NoCredentialsError("none"), "no credentials", None),
    (FileNotFoundError("k"), "missing object", None),
    (PermissionError("k"), "permission denied", None),
    (EOFError("eof"), "truncated", None),
    (OSError(errno.EIO, "io"), "read error", None),
    (TimeoutError("t"), "read error", None),
    (ConnectionError("c"), "read error", None),
    (zlib.error("bad"), "corrupt data", None),
    (MemoryError(), "out of memory", None),
    (ValueError("v"), "invalid argument", "corrupt data"),
    (TypeError("t"), "invalid argument", "corrupt data"),
    (RuntimeError("r"), "unexpected error", "corrupt data"),
]


@pytest.mark.parametrize(("exc", "plain", "decoding"), ROWS)
def test_each_row_of_the_table(exc, plain, decoding):
    assert reason_for(exc) == plain
    assert reason_for(exc, decoding=True) == (decoding or plain)


def test_only_our_errors_bring_their_own_reason():
    import ssl

    err = ssl.SSLError(1, "certificate verify failed")
    err.reason = "CERTIFICATE_VERIFY_FAILED"  # an OSError with a str reason of its own
    assert reason_for(err) == "read error"
    own = HelioError("x")
    assert reason_for(own) == "unexpected error"


SIZES = [
    (None, None), (True, None), (0, None), (-5, None), (1.5, None), (float("inf"), None),
    ("x", None), (2**53 + 1, None), (1e23, None),
    (2880, 2880), ("2880", 2880), (2880.0, 2880), (2**53, 2**53),
]  # fmt: skip


@pytest.mark.parametrize(("value", "size"), SIZES)
def test_one_filesize_rule(value, size):
    import pandas as pd

    from intake_helio.base.sizes import known_size, known_sizes
    from intake_helio.fits.source import _file_limit
    from intake_helio.frames.spec import _size

    assert known_size(value) == size
    assert known_sizes([value]).tolist() == [size or 0]
    assert _size(value) == (size or 0)  # the frame spec
    settings = __import__("intake_helio.base.settings", fromlist=["current"]).current()
    cap = settings.max_file_bytes
    assert _file_limit(settings, value) == (
        cap if size is None else min(cap, size + settings.filesize_slack)
    )
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert known_sizes(pd.Series([value])).tolist() == [size or 0]
