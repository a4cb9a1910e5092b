"""Progress by frames done, per task, in terminals and notebooks (tqdm)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dask.callbacks import Callback

from .scheduling import interactive

__all__ = ["Progress"]

#: Key prefixes of the engine's tasks, whose results are lists of per-frame records.
_TASK_PREFIXES = ("helio-map-", "helio-generic-")


class _FramesDone(Callback):
    """Counts frames as the local scheduler finishes the engine's tasks."""

    def __init__(self, progress: Progress):
        super().__init__()
        self._progress = progress

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if isinstance(name, str) and name.startswith(_TASK_PREFIXES):
            self._progress.update(len(result) if isinstance(result, list) else 1)


class Progress:
    """A frames-done counter shown as a tqdm bar, or a silent one.

    Parameters
    ----------
    bar : tqdm.tqdm or None
        The bar to update; None counts silently.
    """

    def __init__(self, bar: Any | None):
        self._bar = bar
        self.done = 0

    @classmethod
    @contextlib.contextmanager
    def maybe(cls, show: bool, total: int, desc: str = "frames") -> Iterator[Progress]:
        """A bar when ``show`` and someone can see it (terminal or notebook), else silent."""
        bar = None
        if show and interactive():
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="frame", desc=desc, smoothing=0.1)
        try:
            yield cls(bar)
        finally:
            if bar is not None:
                bar.close()

    def update(self, frames: int) -> None:
        """Count ``frames`` more frames as done."""
        self.done += frames
        if self._bar is not None:
            self._bar.update(frames)

    @contextlib.contextmanager
    def local_callback(self) -> Iterator[None]:
        """Count frames per finished task while the local scheduler computes."""
        with _FramesDone(self):
            yield
