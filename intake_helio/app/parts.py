"""The irradiance job's resumable parts: ``<out>/parts/``, its manifest and each part's check.

Parts are CSV files (no pickle) named ``part-NNNNNN.csv``, written atomically as they
complete, next to ``manifest.json``, the run's identity. An interrupted run resumed with the
same arguments computes only what is missing and ends with the same files as an
uninterrupted one.

Nothing in ``parts/`` is trusted because it is there (:mod:`intake_helio.app.outdir`):

- a part is used only if it holds exactly the frames of its number in the run's own frame
  list (number in range, one row per frame, the frames' datakeys and times in order);
  one that does not is removed, computed again, and named in :attr:`PartStore.notes`;
- files are deleted only in a ``parts/`` that holds a manifest written by intake-helio
  (the exact JSON it writes), and only those named like its parts and temporary files; a
  ``parts/`` with other files and no such manifest is refused, untouched;
- ``parts/``, the manifest and the parts are never followed through a symbolic link.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import ArgumentError
from ..compute.reduction import PART_COLUMNS
from ..compute.scheduling import part_range
from .outdir import (
    OutputDirError,
    atomic_write,
    check_same_run,
    read_nofollow,
    refuse_symlink,
    remove_matching,
)

__all__ = ["MANIFEST", "PartStore", "read_csv", "write_csv"]

#: The run's identity in ``parts/``: JSON, keys sorted, indented by one space.
MANIFEST = "manifest.json"
_FLOAT = "%.17g"  # exact round trip, so resumed parts equal recomputed ones
_PART = re.compile(r"part-(\d{6,})\.csv")
#: Temporary files of :func:`~intake_helio.app.outdir.atomic_write` (and of older versions).
_TEMP = re.compile(r"\.(?:part-\d{6,}\.csv|manifest\.json)\.tmp-[^/]+")
_MANIFEST_BYTES = 1 << 20
#: A part's size limit: far above any real part (a row is well under 1 KiB).
_PART_BYTES, _ROW_BYTES = 1 << 20, 16 << 10


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table with times as ``%Y-%m-%dT%H:%M:%S.%f`` and exact floats (``NaN``)."""
    out = df.copy()
    for name in ("time", "frame_time"):
        if name == "time" or name in out:  # NaT (no frame within tolerance): an empty field
            out[name] = pd.DatetimeIndex(out[name]).strftime("%Y-%m-%dT%H:%M:%S.%f").fillna("")
    out.to_csv(path, index=False, float_format=_FLOAT, na_rep="NaN", lineterminator="\n")


def read_csv(source) -> pd.DataFrame:
    """A part table written by :func:`write_csv` (a path or a binary file), typed."""
    df = pd.read_csv(
        source,
        dtype={"datakey": str, "status": str, "frame_time": str},
        keep_default_na=False,
        na_values={"irradiance": ["NaN"]},
    )
    for name in ("time", "frame_time"):
        text = df[name].astype(str).replace("", None)
        df[name] = pd.to_datetime(text, format="%Y-%m-%dT%H:%M:%S.%f").astype("datetime64[ns]")
    df["irradiance"] = df["irradiance"].astype(np.float64)
    df["n_valid"] = df["n_valid"].astype(np.int64)
    return df[PART_COLUMNS]


def _manifest_text(identity: Mapping[str, Any]) -> str:
    return json.dumps(identity, indent=1, sort_keys=True)


class PartStore:
    """Parts of a run in ``<out>/parts/``, with a manifest that identifies the run.

    Parameters
    ----------
    out_dir : path
        The run's output directory.
    identity : dict
        What makes two runs the same (dataset, endpoint, range, options, frames);
        resuming with a different identity is refused.
    resume : bool
        Keep parts of an earlier run with the same identity; otherwise start afresh.
    datakeys : array-like, optional
        The run's frame files in frame order: ``(time,)``, or ``(channel, time)`` for a
        run of several channels, whose parts are numbered channel by channel (part ``p``
        of channel ``k`` is number ``k * parts_per_channel + p``). With them, every saved
        part is checked against the frames it must hold before it is used.
    times : array-like, optional
        The run's frame times, ``(time,)``; checked too (to the microsecond, as saved).
    part_size : int, optional
        Frames per part; required with ``datakeys``.

    Attributes
    ----------
    dir : pathlib.Path
        ``<out_dir>/parts``.
    parts : int or None
        Parts of the run (None without ``datakeys``).
    notes : list of str
        One line for each saved part that failed its check: the file and what did not
        match. Such a part is removed and never used.

    Raises
    ------
    OutputDirError
        ``parts`` or its manifest is a symbolic link, or ``parts`` holds files but no
        manifest written by intake-helio (none of them is deleted).
    ArgumentError
        ``resume`` with the parts of a different run (they are kept), or ``datakeys``
        without ``part_size`` or with another number of frames than ``times``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        identity: Mapping[str, Any],
        resume: bool,
        *,
        datakeys=None,
        times=None,
        part_size: int | None = None,
    ):
        self.dir = Path(out_dir) / "parts"
        self.identity = json.loads(json.dumps(identity, default=str, sort_keys=True))
        self.notes: list[str] = []
        self.parts: int | None = None
        #: Rows (frames) of the parts saved by :meth:`save` since this store was made.
        self.rows_saved = 0
        if datakeys is not None:
            self._set_frames(datakeys, times, part_size)
        old = self._owned()
        if resume and old is not None:
            check_same_run(self.dir, old, self.identity)
            remove_matching(self.dir, [_TEMP])  # left by a run killed while writing a part
            self._check_saved()
            return
        if old is not None:  # our own parts directory: only our own files go
            remove_matching(self.dir, [_PART, _TEMP])
        self.dir.mkdir(parents=True, exist_ok=True)
        refuse_symlink(self.dir, "parts directory")  # made by someone else meanwhile
        text = _manifest_text(self.identity).encode()
        atomic_write(self.dir / MANIFEST, lambda p: p.write_bytes(text))

    # ----------------------------------------------------------------- the run's frames
    def _set_frames(self, datakeys, times, part_size) -> None:
        keys = np.asarray(datakeys).astype(str)  # as the parts hold them
        self._keys = keys.reshape(1, -1) if keys.ndim == 1 else keys
        if self._keys.ndim != 2:
            raise ArgumentError(
                f"datakeys of shape {keys.shape}; expected (time,) or (channel, time)"
            )
        n = self._keys.shape[1]
        self._times = None
        if times is not None:
            self._times = pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns")
            if len(self._times) != n:
                raise ArgumentError(
                    f"{len(self._times)} times for {n} datakeys; expected one time per frame"
                )
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
            raise ArgumentError(
                f"part_size={part_size!r}; expected a positive number of frames (give "
                "part_size= with datakeys=)"
            )
        self._part_size = part_size
        self.parts_per_channel = math.ceil(n / part_size)
        self.parts = self.parts_per_channel * self._keys.shape[0]

    def _problem(self, number: int, df: pd.DataFrame) -> str | None:
        """What in part ``number`` does not match the run's frames (None: it matches)."""
        if self.parts is None:
            return None
        channel, p = divmod(number, self.parts_per_channel)
        rows = part_range(p, self._part_size, self._keys.shape[1])
        if len(df) != len(rows):
            return f"it has {len(df)} rows; part {number} holds {len(rows)} frames"
        want = self._keys[channel, rows.start : rows.stop]
        got = df["datakey"].to_numpy().astype(str)
        if not np.array_equal(got, want):
            row = int(np.flatnonzero(got != want)[0])
            return f"its datakeys are not those of part {number}'s frames (first at row {row})"
        if self._times is not None:
            want_t = self._times[rows.start : rows.stop]
            got_t = pd.DatetimeIndex(df["time"]).as_unit("ns")
            if not got_t.equals(want_t):
                row = int(np.flatnonzero(got_t.to_numpy() != want_t.to_numpy())[0])
                return f"its times are not those of part {number}'s frames (first at row {row})"
        return None

    # ----------------------------------------------------------------- the directory
    def _owned(self) -> dict | None:
        """The identity in our manifest; None when there is no ``parts`` or it is empty."""
        refuse_symlink(self.dir, "parts directory")
        if not self.dir.exists():
            return None
        if not self.dir.is_dir():
            raise OutputDirError(
                f"{self.dir} is a file; expected the parts directory of intake-helio: remove "
                "it or choose another --out"
            )
        manifest = self.dir / MANIFEST
        refuse_symlink(manifest, "parts manifest")
        why, cause = f"no {MANIFEST}", None
        try:
            text = read_nofollow(manifest, _MANIFEST_BYTES).decode("utf-8")
            found = json.loads(text)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, RecursionError) as exc:
            why, cause = f"a {MANIFEST} that intake-helio did not write ({type(exc).__name__})", exc
        else:
            if isinstance(found, dict) and text.replace("\r\n", "\n") == _manifest_text(found):
                return found
            why = f"a {MANIFEST} that intake-helio did not write"
        with os.scandir(self.dir) as entries:
            if next(entries, None) is None:
                return None  # empty: nothing of anyone's to lose
        raise OutputDirError(
            f"{self.dir} holds files and {why}: it is not a parts directory of intake-helio, "
            f"so none of its files is used or deleted; choose another --out, or remove "
            f"{self.dir} yourself"
        ) from cause

    def _name(self, number: int) -> str:
        return f"part-{number:06d}.csv"

    def _path(self, number: int) -> Path:
        return self.dir / self._name(number)

    def _named(self, links: bool = False) -> list[int]:
        """Numbers of the regular files (and, with ``links``, links) named like parts."""
        numbers = []
        with os.scandir(self.dir) as entries:
            for e in entries:
                m = _PART.fullmatch(e.name)
                if not m or e.name != self._name(int(m[1])):
                    continue
                if e.is_file(follow_symlinks=False) or (links and e.is_symlink()):
                    numbers.append(int(m[1]))
        return numbers

    def _read(self, number: int) -> tuple[pd.DataFrame | None, str | None]:
        """``(part, None)``, or ``(None, what is wrong)``; checked when the frames are known."""
        if self.parts is not None and not 0 <= number < self.parts:
            last = f"0..{self.parts - 1}" if self.parts else "none"
            return None, f"part number {number} is outside this run's parts ({last})"
        path = self._path(number)
        limit = _PART_BYTES + _ROW_BYTES * (self._part_size if self.parts is not None else 1 << 20)
        try:
            raw = read_nofollow(path, limit)
        except FileNotFoundError:
            return None, "it was removed while the run went on"
        except OSError as exc:
            if path.is_symlink():
                return None, "it is a symbolic link"
            return None, f"it cannot be read ({exc.strerror or exc})"
        try:
            df = read_csv(io.BytesIO(raw))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            return None, f"it is not a part table ({type(exc).__name__})"
        problem = self._problem(number, df)
        return (None, problem) if problem else (df, None)

    def _reject(self, number: int, problem: str) -> None:
        again = self.parts is not None and 0 <= number < self.parts
        then = f", so part {number} is computed again" if again else ""
        self.notes.append(f"{self._path(number)} not used: {problem}; removed{then}")
        self._path(number).unlink(missing_ok=True)

    def _check_saved(self) -> None:
        for number in sorted(self._named(links=True)):
            _, problem = self._read(number)
            if problem:
                self._reject(number, problem)

    # ----------------------------------------------------------------- public
    @staticmethod
    def fingerprint(datakeys) -> str:
        """A short hash of the frame list (part of a run's identity)."""
        return hashlib.sha1("\n".join(map(str, datakeys)).encode()).hexdigest()[:16]

    def done(self) -> set[int]:
        """Numbers of the parts already saved (within the run's parts, when known)."""
        return {n for n in self._named() if self.parts is None or n < self.parts}

    def save(self, number: int, df: pd.DataFrame) -> None:
        """Save one part atomically (a symbolic link at its name is refused)."""
        atomic_write(self._path(number), lambda p: write_csv(df, p))
        self.rows_saved += len(df)

    def load(self, numbers: Iterable[int] | None = None) -> list[pd.DataFrame]:
        """Every saved part (or those numbered in ``numbers`` that are saved), in part order.

        Each is checked again as it is read; one that fails is removed, named in
        :attr:`notes` and left out.
        """
        done = self.done()
        wanted = done if numbers is None else done & set(numbers)
        parts = []
        for number in sorted(wanted):
            df, problem = self._read(number)
            if problem:
                self._reject(number, problem)
            else:
                parts.append(df)
        return parts

    def fill(
        self, compute: Callable[[set[int]], Any], numbers: Iterable[int] | None = None
    ) -> list[pd.DataFrame]:
        """Compute the parts not saved yet, then load them all, each checked.

        Parameters
        ----------
        compute : callable
            ``compute(saved)`` computes and :meth:`save`\\ s every part of ``numbers`` not
            in the set ``saved``.
        numbers : iterable of int, optional
            The parts wanted (all the run's parts by default).

        Returns
        -------
        list of pandas.DataFrame
            The parts, in part order. A part that fails its check when loaded is computed
            again (once); it is never merged.

        Raises
        ------
        OutputDirError
            A part still fails its check after it was computed again (something else
            writes into ``parts``).
        ArgumentError
            The store was made without the run's frames.
        """
        if self.parts is None:
            raise ArgumentError(
                "PartStore.fill needs the run's frames; give datakeys= and part_size="
            )
        wanted = set(range(self.parts) if numbers is None else numbers)
        for _ in range(2):
            saved = self.done() & wanted
            if saved != wanted:
                compute(saved)
            parts = self.load(wanted)
            if len(parts) == len(wanted):
                return parts
        bad = sorted(wanted - self.done())
        raise OutputDirError(
            f"{self.dir}: {len(bad)} part(s) (first: {self._name(bad[0]) if bad else '?'}) "
            "still missing or failing their check after being computed again; something "
            "else writes into this directory: choose an --out that only this run writes to"
        )
