"""The output directory guard: what the jobs write, replace and delete under ``--out``.

The jobs trust only what they wrote themselves. An output file (CSV, netCDF, PNG, a part, the
manifest) or a directory they own (``parts/``, a Zarr store) that is a symbolic link is
refused, never written through. Files are written to a temporary file made with
:func:`tempfile.mkstemp` next to the target (a fresh name, created exclusively, so a link
planted at any name is never followed) and moved into place with :func:`os.replace`; the
temporary file is removed if anything fails. Files are deleted only inside a directory that
holds the tool's own manifest, and only those with the tool's own names.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..base.errors import ArgumentError

__all__ = [
    "OutputDirError",
    "atomic_write",
    "check_outputs",
    "check_same_run",
    "read_nofollow",
    "refuse_symlink",
    "remove_matching",
]


class OutputDirError(ArgumentError):
    """An output path the jobs will not use: a symbolic link, or files that are not theirs.

    A :class:`~intake_helio.base.errors.HelioError` and a ``ValueError`` (the ``--out``
    value cannot be used as it is); the message names the path and says what to do.
    """


@functools.cache
def _umask() -> int:
    """The process's umask (read without changing it where the system allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def refuse_symlink(path: str | os.PathLike, what: str = "output file") -> None:
    """Raise if ``path`` is a symbolic link (dangling or not).

    Parameters
    ----------
    path : path
        A file or directory the jobs are about to write, replace or delete.
    what : str
        What ``path`` is, for the message (``"output file"``, ``"parts directory"``).

    Raises
    ------
    OutputDirError
        ``path`` is a symbolic link; nothing was written through it.
    """
    path = Path(path)
    if path.is_symlink():
        try:
            target = f" (to {os.readlink(path)!r})"
        except OSError:
            target = ""
        raise OutputDirError(
            f"{what} {str(path)!r} is a symbolic link{target}; expected a plain file or "
            "directory written by intake-helio, so nothing is written through it: remove the "
            "link or choose another --out"
        )


def check_outputs(out_dir: str | os.PathLike, names: Iterable[str]) -> None:
    """Refuse, before any work, output files of ``out_dir`` that are symbolic links.

    Raises
    ------
    OutputDirError
        One of ``out_dir / name`` is a symbolic link.
    """
    for name in names:
        refuse_symlink(Path(out_dir) / name)


def check_same_run(
    where: str | os.PathLike, old: Mapping[str, Any], identity: Mapping[str, Any]
) -> None:
    """For ``--resume``: refuse saved parts at ``where`` whose run ``old`` is not this one.

    The message names the fields of the identity that differ, never their values.
    """
    if old == identity:
        return
    diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
    raise ArgumentError(
        f"--resume: {where} holds parts of a different run (differs in "
        f"{', '.join(diff)}); use another --out, or drop --resume to start afresh"
    )


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a fresh temporary file next to it, then replace ``path``.

    Parameters
    ----------
    path : path
        The file to write; its directory must exist.
    write : callable
        ``write(tmp)`` writes the whole content to the path ``tmp`` (an empty file made by
        :func:`tempfile.mkstemp` with the permissions the umask allows).

    Raises
    ------
    OutputDirError
        ``path`` is a symbolic link (it is left as it is).
    """
    path = Path(path)
    refuse_symlink(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # as an ordinary open() would have made it
        finally:
            os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_nofollow(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file ``path``, opened without following a symbolic link.

    Raises
    ------
    FileNotFoundError
        There is no ``path``.
    OSError
        ``path`` is a symbolic link (``ELOOP``), not a regular file, or larger than
        ``limit`` bytes.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if st.st_size > limit:
            raise OSError(f"{path} is {st.st_size} bytes; expected at most {limit}")
        return f.read(limit + 1)[:limit]


def remove_matching(directory: str | os.PathLike, patterns: Iterable[re.Pattern]) -> None:
    """Delete the entries of ``directory`` whose names match one of ``patterns`` in full.

    Only files and symbolic links (the link itself) are deleted, never a directory or
    anything below one. The caller checks that ``directory`` is its own.
    """
    patterns = list(patterns)
    with os.scandir(directory) as entries:
        names = [
            e.path
            for e in entries
            if any(p.fullmatch(e.name) for p in patterns) and not e.is_dir(follow_symlinks=False)
        ]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
