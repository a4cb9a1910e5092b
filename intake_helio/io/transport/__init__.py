"""The door: every catalog, index and frame read of intake-helio goes through here.

:func:`filesystem` gives each URL its fsspec filesystem with the options that apply, the
default timeouts and, for ``http(s)://``, the session of :mod:`.session` (every redirect hop
under the URL policy, credentials kept to their origin, host names checked on the
addresses they resolve to); :mod:`.bounded` reads from it never more bytes than asked,
within a deadline. The private fsspec, s3fs and aiohttp APIs this needs stay in this package.
"""

from .bounded import (
    BoundedBody,
    ConnectionRate,
    Deadline,
    cat_bounded,
    cat_ranges_bounded,
    connection_rate,
    split_ranges,
    start_cat_bounded,
)
from .filesystems import FileSystems, filesystem, read_limited, too_large
from .session import Door, InternalAddressError, RedirectRefusedError, get_client

__all__ = [
    "BoundedBody",
    "ConnectionRate",
    "Deadline",
    "Door",
    "FileSystems",
    "InternalAddressError",
    "RedirectRefusedError",
    "cat_bounded",
    "cat_ranges_bounded",
    "connection_rate",
    "filesystem",
    "get_client",
    "read_limited",
    "split_ranges",
    "start_cat_bounded",
    "too_large",
]
