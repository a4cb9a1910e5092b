"""Where tasks run and how work is cut: the active client, thread counts, parts and batches."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..base.work import active_client, batch_sizes, threads_of

__all__ = [
    "active_client",
    "batch_sizes",
    "interactive",
    "part_range",
    "scheduler_workers",
    "threads_of",
]


def scheduler_workers(client: Any, attempts: int = 4) -> dict[str, dict[str, Any]]:
    """The workers the scheduler knows now, by address, asked of the scheduler itself.

    ``client.scheduler_info()`` swallows an ``OSError`` from the scheduler (a busy
    gateway proxy, say) and returns its cached copy, whose ``"workers"`` is empty: a
    wrong answer that looks right. Here a failed query is retried ``attempts`` times
    (0.5 s apart) and then raised.
    """
    attempt = 1
    while True:
        try:
            identity = client.sync(client.scheduler.identity, n_workers=-1)
            return dict(identity.get("workers", {}))
        except OSError:
            if attempt >= attempts:
                raise
            attempt += 1
            time.sleep(0.5)


def interactive() -> bool:
    """Whether a progress bar can be seen: a notebook, or stderr is a terminal."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def part_range(p: int, part_size: int, n: int) -> range:
    """The frames of part ``p``: ``part_size`` consecutive frames, fewer in the last part."""
    return range(p * part_size, min(n, (p + 1) * part_size))
