"""The bytes of one file: a ranged byte cache over fsspec, and whole-file reads in one request.

:class:`_Source` fetches what the HDU walk and the pixel decoders ask for, with ranged reads
merged into as few requests as possible (retried with :func:`~intake_helio.io.retry.retry_io`),
or the whole file at once; it keeps no file handle open. :func:`start_whole_read` starts a
whole-file read ahead of time.

Every read is bounded (:func:`~intake_helio.io.transport.cat_bounded`): a ranged read accepts
at most the bytes it asked for, and no read of a file goes past :func:`_file_limit` bytes
(the index's ``filesize`` plus ``intake_helio.filesize-slack``, and never more than
``intake_helio.max-file-bytes``), whatever the server sends or the FITS headers declare,
and every request has a total deadline (``intake_helio.timeouts.allowance`` plus its bytes at
``timeouts.min-rate``, :class:`~intake_helio.io.deadline.Deadline`): a server that trickles
fails the read with :class:`~intake_helio.base.errors.ReadDeadlineError`, not retried.
"""

from __future__ import annotations

import concurrent.futures
import errno
from collections.abc import Callable, Sequence
from typing import Any

from ..base.errors import FrameReadError
from ..base.reasons import Reason
from ..base.settings import Settings, current
from ..base.sizes import file_limit, known_size
from ..io.retry import retry_io
from ..io.transport import BoundedBody, Deadline, cat_bounded, cat_ranges_bounded, start_cat_bounded

__all__ = [
    "_Source",
    "_check_present",
    "_datakey",
    "_few",
    "_file_limit",
    "_is_range_error",
    "_merge_ranges",
    "_sentinel",
    "start_whole_read",
]


def _datakey(fs, path: str) -> str:
    try:
        return fs.unstrip_protocol(path)
    except Exception:
        return str(path)


def _few(items: Sequence[str], keep: int = 3, sep: str = "; ") -> str:
    """``items`` joined, the first ``keep`` only, then ``"... (N more)"``: messages stay short."""
    head = sep.join(items[:keep])
    more = len(items) - keep
    return f"{head}{sep}... ({more} more)" if more > 0 else head


_known_size = known_size  # the one rule (intake_helio.base.sizes)


_file_limit = file_limit  # the one rule (intake_helio.base.sizes)


class _Source:
    """The bytes of one file known so far, fetched on demand with ranged reads.

    ``settings`` gives the retries of every read (``retry_attempts``, ``retry_base_delay``),
    how close ranged reads must be to be merged into one (``max_gap``) and, with the index's
    ``filesize`` (None or 0: unknown), the most bytes of the file any read takes
    (:func:`_file_limit`): nothing past ``max_bytes`` is requested or accepted.
    """

    def __init__(
        self,
        fs,
        path: str,
        settings: Settings,
        prefetched: concurrent.futures.Future | None = None,
        filesize: int | None = None,
    ):
        self.fs = fs
        self.path = path
        self._prefetched = prefetched  # the whole file, being read (start_whole_read)
        self._attempts = settings.retry_attempts
        self._base_delay = settings.retry_base_delay
        self._max_gap = settings.max_gap
        self._settings = settings
        self._deadline = Deadline.from_settings(settings.catalog)
        self.filesize = _known_size(filesize)
        self.max_bytes = _file_limit(settings, filesize)
        self.key = _datakey(fs, path)
        self.segments: list[tuple[int, bytes]] = []
        self.size: int | None = None  # exact file size, when known
        self.limit: int | None = None  # the file has at most this many bytes, when known
        self.bytes_fetched = 0

    def _retry(self, fn: Callable[..., Any], *args: Any) -> Any:
        return retry_io(fn, *args, attempts=self._attempts, base_delay=self._base_delay)

    # -- limits
    def _limited_by_cap(self) -> bool:
        return self.filesize is None or self.max_bytes >= self._settings.max_file_bytes

    def past_limit(self, needed: int | None = None) -> FrameReadError:
        """The error for a file (or a read of it) that goes past ``max_bytes``.

        ``needed``: the byte the headers need (None: the object itself is larger).
        """
        what = (
            f"the object has more than {self.max_bytes} bytes"
            if needed is None
            else f"the FITS headers need bytes up to {needed}"
        )
        if self._limited_by_cap():
            return FrameReadError(
                self.key,
                Reason.IMAGE_TOO_LARGE,
                f"{what}, over intake_helio.max-file-bytes={self._settings.max_file_bytes}; "
                "raise it (dask.config.set({'intake_helio.max-file-bytes': N})) to read it",
            )
        return FrameReadError(
            self.key,
            Reason.READ_ERROR,
            f"{what}, past the index's filesize {self.filesize} plus "
            f"intake_helio.filesize-slack={self._settings.filesize_slack}; the index is out "
            "of date or the server sends more than the object: re-index, or raise the slack",
        )

    # -- fetching
    def load_all(self) -> bytes:
        """Fetch the whole file in one request (or return it if already fetched)."""
        for start, data in self.segments:
            if start == 0 and len(data) == self.size:
                return data
        body = self._retry(self._cat_whole)
        if body.more:
            raise self.past_limit()
        data = bytes(body.data)
        self.bytes_fetched += len(data)
        self.segments = [(0, data)]
        self.size = len(data)
        return data

    def _cat_whole(self) -> BoundedBody:
        if self._prefetched is not None:  # first attempt: the read started ahead of time
            fut, self._prefetched = self._prefetched, None
            return fut.result()
        fut = _start_whole(self.fs, self.path, self.filesize, self._settings, self._deadline)
        if fut is not None:
            return fut.result()
        return cat_bounded(self.fs, self.path, limit=self.max_bytes, deadline=self._deadline)

    def _accept(self, body: BoundedBody, start: int, end: int) -> bytes:
        """The bytes of a ranged read, checked: never more than asked for."""
        if not body.ranged:  # the server sent the whole object
            if start == 0:  # its first bytes are the range asked for
                return body.data
            raise FrameReadError(
                self.key,
                Reason.READ_ERROR,
                f"asked for bytes {start}-{end - 1}, the server sent the whole object instead "
                "(it ignores Range requests); read such frames whole (no cutout)",
            )
        if body.more:
            raise FrameReadError(
                self.key,
                Reason.READ_ERROR,
                f"asked for bytes {start}-{end - 1}, the server sent more than those "
                f"{end - start} bytes; reading stopped there (a body without end?)",
            )
        return body.data

    def _cat(self, start: int, end: int) -> bytes:
        try:
            body = cat_bounded(
                self.fs, self.path, start, end, limit=end - start, deadline=self._deadline
            )
        except OSError as exc:
            if _is_range_error(exc):
                return b""
            raise
        return self._accept(body, start, end)

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
        """Fetch byte ranges not yet known, merged, in one concurrent call.

        Ranges are clipped to ``max_bytes`` (:meth:`get` tells when that matters).
        """
        todo = [(s, e) for s, e in ranges if e > s and self._lookup(s, e) is None]
        last = self.max_bytes if self.size is None else min(self.size, self.max_bytes)
        todo = [(s, min(e, last)) for s, e in todo if s < last]
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
        out = cat_ranges_bounded(self.fs, self.path, merged, deadline=self._deadline)
        results = []
        for (s, e), r in zip(merged, out, strict=True):
            if isinstance(r, BaseException):
                if isinstance(r, OSError) and _is_range_error(r):
                    results.append(b"")
                    continue
                raise r
            results.append(self._accept(r, s, e))
        return results

    def read_ahead(self, start: int, end: int) -> None:
        """Make ``[start, end)`` known; a fetch that extends a segment at least doubles it.

        For walks over many small consecutive headers: the fetches then grow geometrically,
        so their number grows with the log of the bytes walked and the bytes copied stay
        linear in them (bounded by ``max_bytes`` like every read).
        """
        if self._lookup(start, end) is not None:
            return
        for s, d in self.segments:
            known = s + len(d)
            if s <= start <= known:
                stop = min(max(end, known + len(d)), self.max_bytes)
                if self.size is not None:
                    stop = min(stop, self.size)
                if self.limit is not None:
                    stop = min(stop, self.limit)
                if stop > known:
                    self._fetch(known, stop)
                return

    # -- access
    def _lookup(self, start: int, end: int) -> memoryview | None:
        for s, d in self.segments:
            if s <= start and end <= s + len(d):
                return memoryview(d)[start - s : end - s]
        return None

    def get(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)``, shorter only where the file ends.

        Raises
        ------
        FrameReadError
            When the bytes go on past ``max_bytes`` (:meth:`past_limit`).
        """
        if self.size is not None:
            end = min(end, self.size)
            if start >= end:
                return memoryview(b"")
        if self.limit is not None and start >= self.limit:
            return memoryview(b"")
        wanted = end
        end = min(end, self.max_bytes + 1)  # one byte more tells whether the file goes on
        got = self._get(start, end) if start < end else memoryview(b"")
        if wanted > self.max_bytes and start + len(got) > self.max_bytes:
            raise self.past_limit(wanted)
        return got

    def _get(self, start: int, end: int) -> memoryview:
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
    if end > src.max_bytes:
        return []  # never read: _check_present reports it
    return [] if src.has_byte(end - 1) is not None else [(end - 1, end)]


def _check_present(src: _Source, end: int) -> None:
    if end > 0 and src.has_byte(end - 1) is False:
        has = (
            f"the file has only {src.size} bytes"
            if src.size is not None
            else f"the file ends at or before byte {src.limit}"
        )
        raise FrameReadError(
            src.key, Reason.TRUNCATED, f"the HDU's data should end at byte {end} but {has}"
        )
    if end > src.max_bytes:
        raise src.past_limit(end)


def start_whole_read(
    fs, path: str, filesize: int | None = None, *, settings: Settings | None = None
) -> concurrent.futures.Future | None:
    """Start fetching a whole file in the background, if ``fs`` can.

    For s3fs and fsspec's HTTP filesystem used synchronously, the request runs on the
    filesystem's own event-loop thread while the caller works on something else, e.g.
    decodes the previous frame: the download of one frame then overlaps the decoding of
    another, and a core is not left idle while bytes arrive.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file.
    path : str
        Path of the file on ``fs``.
    filesize : int, optional
        The index's size of the file: the read stops past it (:func:`_file_limit`).
        Pass the same ``filesize`` to the read that uses the future.
    settings : Settings, optional
        The limits (None: :func:`~intake_helio.base.settings.current`).

    Returns
    -------
    concurrent.futures.Future or None
        A future of the file's bytes (a :class:`~intake_helio.io.transport.BoundedBody`), to
        pass as ``prefetched=`` to :func:`~intake_helio.fits.frame.frame_sum` or
        :func:`~intake_helio.fits.frame.read_frame` (which retry a failed read as usual);
        ``cancel()`` it if it is not used. None when ``fs`` has no event loop of its own
        (local files, memory): there is nothing to gain, the file is read when needed.
    """
    settings = current() if settings is None else settings
    return _start_whole(fs, path, _known_size(filesize), settings)


def _start_whole(fs, path: str, size: int | None, settings: Settings, deadline=None):
    """Start a whole read, split into ``read-part-bytes`` ranges for a large known size."""
    limit = _file_limit(settings, size)
    return start_cat_bounded(
        fs,
        path,
        limit=limit,
        size=size,
        part=settings.read_part_bytes,
        split_below=settings.split_below_mbps * 1e6,
        deadline=Deadline.from_settings(settings.catalog) if deadline is None else deadline,
    )
