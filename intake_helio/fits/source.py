"""The bytes of one file: a ranged byte cache over fsspec, and whole-file reads in one request.

:class:`_Source` fetches what the HDU walk and the pixel decoders ask for, with ranged reads
merged into as few requests as possible (``fs.cat_file`` / ``fs.cat_ranges``, retried with
:func:`~intake_helio.io.retry.retry_io`), or the whole file at once; it keeps no file handle
open. :func:`start_whole_read` starts a whole-file read ahead of time.
"""

from __future__ import annotations

import concurrent.futures
import errno
from collections.abc import Callable, Sequence
from typing import Any

from ..base.errors import FrameReadError
from ..base.reasons import Reason
from ..base.settings import Settings
from ..io.retry import retry_io
from ..io.shims import start_async_cat_file

__all__ = [
    "_Source",
    "_check_present",
    "_datakey",
    "_is_range_error",
    "_merge_ranges",
    "_sentinel",
    "_whole_file_kwargs",
    "start_whole_read",
]


def _datakey(fs, path: str) -> str:
    try:
        return fs.unstrip_protocol(path)
    except Exception:
        return str(path)


class _Source:
    """The bytes of one file known so far, fetched on demand with ranged reads.

    ``settings`` gives the retries of every read (``retry_attempts``, ``retry_base_delay``)
    and how close ranged reads must be to be merged into one (``max_gap``).
    """

    def __init__(
        self,
        fs,
        path: str,
        settings: Settings,
        prefetched: concurrent.futures.Future | None = None,
    ):
        self.fs = fs
        self.path = path
        self._prefetched = prefetched  # the whole file, being read (start_whole_read)
        self._attempts = settings.retry_attempts
        self._base_delay = settings.retry_base_delay
        self._max_gap = settings.max_gap
        self.key = _datakey(fs, path)
        self.segments: list[tuple[int, bytes]] = []
        self.size: int | None = None  # exact file size, when known
        self.limit: int | None = None  # the file has at most this many bytes, when known
        self.bytes_fetched = 0

    def _retry(self, fn: Callable[..., Any], *args: Any) -> Any:
        return retry_io(fn, *args, attempts=self._attempts, base_delay=self._base_delay)

    # -- fetching
    def load_all(self) -> bytes:
        """Fetch the whole file in one request (or return it if already fetched)."""
        for start, data in self.segments:
            if start == 0 and len(data) == self.size:
                return data
        data = bytes(self._retry(self._cat_whole))
        self.bytes_fetched += len(data)
        self.segments = [(0, data)]
        self.size = len(data)
        return data

    def _cat_whole(self) -> bytes:
        if self._prefetched is not None:  # first attempt: the read started ahead of time
            fut, self._prefetched = self._prefetched, None
            return fut.result()
        return self.fs.cat_file(self.path, **_whole_file_kwargs(self.fs))

    def _cat(self, start: int, end: int) -> bytes:
        try:
            return bytes(self.fs.cat_file(self.path, start=start, end=end))
        except OSError as exc:
            if _is_range_error(exc):
                return b""
            raise

    def _fetch(self, start: int, end: int) -> bytes:
        data = self._retry(self._cat, start, end)
        self.bytes_fetched += len(data)
        self._store(start, end, data)
        return data

    def _store(self, start: int, end: int, data: bytes) -> None:
        if len(data) < end - start:
            eof = start + len(data)
            if data or start == 0:
                self.size = eof if self.size is None else min(self.size, eof)
            else:  # nothing at ``start``: the file ends at or before it
                self.limit = start if self.limit is None else min(self.limit, start)
        if data:
            # extend an adjacent segment when possible (growing header reads)
            for i, (s, d) in enumerate(self.segments):
                if s + len(d) == start:
                    self.segments[i] = (s, d + data)
                    return
            self.segments.append((start, data))

    def fetch_many(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch byte ranges not yet known, merged, in one ``cat_ranges`` call."""
        todo = [(s, e) for s, e in ranges if e > s and self._lookup(s, e) is None]
        if self.size is not None:
            todo = [(s, min(e, self.size)) for s, e in todo if s < self.size]
        merged = _merge_ranges(todo, self._max_gap)
        if not merged:
            return
        if len(merged) == 1:
            self._fetch(*merged[0])
            return
        results = self._retry(self._cat_ranges, merged)
        for (s, e), data in zip(merged, results, strict=True):
            self.bytes_fetched += len(data)
            self._store(s, e, data)

    def _cat_ranges(self, merged: list[tuple[int, int]]) -> list[bytes]:
        n = len(merged)
        out = self.fs.cat_ranges(
            [self.path] * n, [s for s, _ in merged], [e for _, e in merged], on_error="return"
        )
        results = []
        for r in out:
            if isinstance(r, BaseException):
                if isinstance(r, OSError) and _is_range_error(r):
                    results.append(b"")
                    continue
                raise r
            results.append(bytes(r))
        return results

    # -- access
    def _lookup(self, start: int, end: int) -> memoryview | None:
        for s, d in self.segments:
            if s <= start and end <= s + len(d):
                return memoryview(d)[start - s : end - s]
        return None

    def get(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)``, shorter only where the file ends."""
        if self.size is not None:
            end = min(end, self.size)
            if start >= end:
                return memoryview(b"")
        if self.limit is not None and start >= self.limit:
            return memoryview(b"")
        got = self._lookup(start, end)
        if got is not None:
            return got
        # reuse a segment that covers the beginning, fetch only the rest
        for s, d in self.segments:
            if s <= start < s + len(d):
                head = bytes(memoryview(d)[start - s :])
                tail = self._fetch(s + len(d), end)
                return memoryview(head + tail)
        return memoryview(self._fetch(start, end))

    def has_byte(self, pos: int) -> bool | None:
        """Whether byte ``pos`` exists, or None if unknown without a read."""
        if self.size is not None:
            return pos < self.size
        if self._lookup(pos, pos + 1) is not None:
            return True
        if self.limit is not None and pos >= self.limit:
            return False
        return None


def _whole_file_kwargs(fs) -> dict[str, Any]:
    """Extra ``cat_file`` arguments that make a whole-file read one GET request.

    s3fs (and adlfs) read a whole object by first asking for its size with a HEAD request,
    to split objects larger than their block size (50 MB) into concurrent ranged GETs: for a
    frame that is a second round trip (and a second request for the server) every time.
    ``max_concurrency=1`` skips it.
    """
    concurrency = getattr(fs, "max_concurrency", None)
    if isinstance(concurrency, int) and concurrency > 1:
        return {"max_concurrency": 1}
    return {}


def _is_range_error(exc: OSError) -> bool:
    return exc.errno == errno.EINVAL and "range" in str(exc).lower()


def _merge_ranges(ranges: Sequence[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(ranges):
        if out and s - out[-1][1] <= max_gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _sentinel(src: _Source, end: int) -> list[tuple[int, int]]:
    """A 1-byte range at the end of the HDU's data, when the file size is unknown."""
    return [] if src.has_byte(end - 1) is not None else [(end - 1, end)]


def _check_present(src: _Source, end: int) -> None:
    if end > 0 and src.has_byte(end - 1) is False:
        raise FrameReadError(
            src.key,
            Reason.TRUNCATED,
            f"the HDU's data should end at byte {end} but the file has only {src.size} bytes",
        )


def start_whole_read(fs, path: str) -> concurrent.futures.Future | None:
    """Start fetching a whole file in the background, if ``fs`` can.

    For fsspec's async filesystems used synchronously (s3fs, gcsfs, http, ...), the
    request runs on the filesystem's own event-loop thread while the caller works on
    something else, e.g. decodes the previous frame: the download of one frame then
    overlaps the decoding of another, and a core is not left idle while bytes arrive.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file.
    path : str
        Path of the file on ``fs``.

    Returns
    -------
    concurrent.futures.Future or None
        A future of the file's bytes, to pass as ``prefetched=`` to
        :func:`~intake_helio.fits.frame.frame_sum` or
        :func:`~intake_helio.fits.frame.read_frame` (which retry a failed read as usual);
        ``cancel()`` it if it is not used. None when ``fs`` has no event loop of its own
        (local files, memory): there is nothing to gain, the file is read when needed.
    """
    return start_async_cat_file(fs, path, **_whole_file_kwargs(fs))
