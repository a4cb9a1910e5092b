"""Digests of long lists of text (a mission's 1.5 million datakeys) made piece by piece.

``hashlib.sha1("\\n".join(keys).encode())`` first builds the joined text and its bytes: for
a mission that is ~290 MB at once, a fifth of a notebook's budget, only to be hashed.
:func:`update_joined` feeds the hash the same bytes a slice of keys at a time, so the digest
is unchanged (runs saved before keep their identity) and the memory is one slice's.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

__all__ = ["update_joined"]

#: Keys joined per update of the hash (~6 MB of text for 96-character keys).
SLICE = 65_536


def update_joined(h: Any, items: Iterable[Any], sep: str = "\n", size: int = SLICE) -> Any:
    """Update hash ``h`` with ``sep.join(map(str, items)).encode()``, a slice at a time.

    Parameters
    ----------
    h : hashlib hash object
        Updated in place (and returned).
    items : iterable
        The texts (each taken as ``str(item)``).
    sep : str
        What goes between two items (not after the last).
    size : int
        Items joined per update.

    Returns
    -------
    hashlib hash object
        ``h``, for ``update_joined(hashlib.sha1(), keys).hexdigest()``.
    """
    it = iter(items)
    first = True
    while chunk := list(islice(it, size)):
        if not first:
            h.update(sep.encode())
        h.update(sep.join(map(str, chunk)).encode())
        first = False
    return h
