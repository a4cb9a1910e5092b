"""Parts of a run interrupted by an older version: ``<out>/parts/``, read once into Zarr.

intake-helio up to this version saved the irradiance job's parts as CSV files,
``<out>/parts/part-NNNNNN.csv`` next to ``manifest.json`` (the run's identity). Now every
job saves its parts in one Zarr store (:mod:`intake_helio.app.stores`). ``--resume`` of
such a run imports the parts that pass their check into the store, then deletes the old
parts and their directory: the run ends with the same files as an uninterrupted one.

Nothing in ``parts/`` is trusted because it is there (:mod:`intake_helio.app.outdir`):

- a part is used only if it holds exactly the frames of its number in the run's own frame
  list (number in range, one row per frame, the frames' datakeys and times in order);
  one that does not is not imported (its part is computed again) and is named in the
  notes;
- files are deleted only in a ``parts/`` that holds a manifest written by intake-helio
  (the exact JSON it wrote), and only those named like its parts, its temporary files and
  the manifest; a ``parts/`` with other files and no such manifest is refused, untouched;
- ``parts/``, the manifest and the parts are never followed through a symbolic link.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..compute.reduction import PART_COLUMNS, part_stats
from ..compute.scheduling import part_range
from .outdir import OutputDirError, check_same_run, read_nofollow, refuse_symlink, remove_matching
from .stores import ZarrStore

__all__ = ["MANIFEST", "LegacyParts", "read_part"]

#: The run's identity in ``parts/``: JSON, keys sorted, indented by one space.
MANIFEST = "manifest.json"
_PART = re.compile(r"part-(\d{6,})\.csv")
#: Temporary files of :func:`~intake_helio.app.outdir.atomic_write` (and of older versions).
_TEMP = re.compile(r"\.(?:part-\d{6,}\.csv|manifest\.json)\.tmp-[^/]+")
_MANIFEST_BYTES = 1 << 20
#: A part's size limit: far above any real part (a row is well under 1 KiB).
_PART_BYTES, _ROW_BYTES = 1 << 20, 16 << 10


def read_part(source) -> pd.DataFrame:
    """A part table as older versions wrote it (a path or a binary file), typed."""
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


class LegacyParts:
    """The ``<out>/parts/`` of a run interrupted by an older version, for ``--resume``.

    Parameters
    ----------
    out_dir : path
        The run's output directory.
    identity : dict
        The run's identity as older versions wrote it in the manifest; another one is
        refused.
    datakeys : array-like
        The run's frame files in frame order: ``(time,)``, or ``(channel, time)`` (parts
        numbered channel by channel, as :meth:`ZarrStore.part_number` numbers them).
    times : array-like
        The run's frame times, ``(time,)``; checked to the microsecond, as saved.
    part_size : int
        Frames per part.

    Attributes
    ----------
    dir : pathlib.Path
        ``<out_dir>/parts``.
    found : bool
        Whether ``dir`` holds parts of this run (False: there is none, or it is empty).
    notes : list of str
        One line for each part that failed its check: the file and what did not match.

    Raises
    ------
    OutputDirError
        ``parts`` or its manifest is a symbolic link, or ``parts`` holds files but no
        manifest written by intake-helio (none of them is read or deleted).
    ArgumentError
        The manifest is that of a different run (nothing is deleted).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        identity: Mapping[str, Any],
        *,
        datakeys,
        times,
        part_size: int,
    ):
        self.dir = Path(out_dir) / "parts"
        self.notes: list[str] = []
        keys = np.asarray(datakeys).astype(str)  # as the parts hold them
        self._keys = keys.reshape(1, -1) if keys.ndim == 1 else keys
        self._times = pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns")
        self._part_size = int(part_size)
        self.parts_per_channel = math.ceil(self._keys.shape[1] / self._part_size)
        self.parts = self.parts_per_channel * self._keys.shape[0]
        old = self._owned()
        self.found = old is not None
        if old is not None:
            ident = json.loads(json.dumps(dict(identity), default=str, sort_keys=True))
            check_same_run(self.dir, old, ident)

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

    def _path(self, number: int) -> Path:
        return self.dir / f"part-{number:06d}.csv"

    def _named(self) -> list[int]:
        """Numbers of the regular files and links named like parts."""
        numbers = []
        with os.scandir(self.dir) as entries:
            for e in entries:
                m = _PART.fullmatch(e.name)
                if not m or e.name != self._path(int(m[1])).name:
                    continue
                if e.is_file(follow_symlinks=False) or e.is_symlink():
                    numbers.append(int(m[1]))
        return sorted(numbers)

    # ----------------------------------------------------------------- the checks
    def _problem(self, number: int, df: pd.DataFrame) -> str | None:
        """What in part ``number`` does not match the run's frames (None: it matches)."""
        channel, p = divmod(number, self.parts_per_channel)
        rows = part_range(p, self._part_size, self._keys.shape[1])
        if len(df) != len(rows):
            return f"it has {len(df)} rows; part {number} holds {len(rows)} frames"
        want = self._keys[channel, rows.start : rows.stop]
        got = df["datakey"].to_numpy().astype(str)
        if not np.array_equal(got, want):
            row = int(np.flatnonzero(got != want)[0])
            return f"its datakeys are not those of part {number}'s frames (first at row {row})"
        want_t = self._times[rows.start : rows.stop]
        got_t = pd.DatetimeIndex(df["time"]).as_unit("ns")
        if not got_t.equals(want_t):
            row = int(np.flatnonzero(got_t.to_numpy() != want_t.to_numpy())[0])
            return f"its times are not those of part {number}'s frames (first at row {row})"
        return None

    def _read(self, number: int) -> tuple[pd.DataFrame | None, str | None]:
        """``(part, None)``, or ``(None, what is wrong)``."""
        if not 0 <= number < self.parts:
            last = f"0..{self.parts - 1}" if self.parts else "none"
            return None, f"part number {number} is outside this run's parts ({last})"
        path = self._path(number)
        try:
            raw = read_nofollow(path, _PART_BYTES + _ROW_BYTES * self._part_size)
        except FileNotFoundError:
            return None, "it was removed while the run went on"
        except OSError as exc:
            if path.is_symlink():
                return None, "it is a symbolic link"
            return None, f"it cannot be read ({exc.strerror or exc})"
        try:
            df = read_part(io.BytesIO(raw))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            return None, f"it is not a part table ({type(exc).__name__})"
        problem = self._problem(number, df)
        return (None, problem) if problem else (df, None)

    # ----------------------------------------------------------------- public
    def import_into(self, store: ZarrStore) -> int:
        """Save every part that passes its check in ``store``, then delete ``parts/``.

        Parts that fail are named in :attr:`notes` and left to be computed again. Only
        this version's own names are deleted (parts, temporary files, the manifest last);
        the directory goes when nothing else is left in it.

        Returns
        -------
        int
            The number of parts imported.
        """
        if not self.found:
            return 0
        imported = 0
        for number in self._named():
            df, problem = self._read(number)
            if problem:
                again = f", so part {number} is computed again" if number < self.parts else ""
                self.notes.append(f"{self._path(number)} not used: {problem}; removed{again}")
                continue
            store.save(number, part_stats(df))
            imported += 1
        remove_matching(self.dir, [_PART, _TEMP])
        (self.dir / MANIFEST).unlink(missing_ok=True)
        try:
            self.dir.rmdir()
        except OSError:  # someone else's files were added: they stay, with the directory
            pass
        return imported
