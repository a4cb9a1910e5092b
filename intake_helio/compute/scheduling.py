"""Where tasks run and how work is cut: the active client, thread counts, parts and batches."""

from __future__ import annotations

import sys
import time
from typing import Any

import dask

__all__ = [
    "active_client",
    "batch_sizes",
    "interactive",
    "part_range",
    "scheduler_workers",
    "threads_of",
]


def active_client() -> Any | None:
    """Return the current (default, not closed) ``distributed.Client``, or None.

    Inside ``with ih.cluster(...) as client:`` this is ``client``; outside any client
    the local dask scheduler is used. ``distributed`` is imported only if installed
    and already in use.
    """
    if "distributed" not in sys.modules:
        return None  # no client can exist before distributed was imported
    import distributed

    try:
        client = distributed.default_client()
    except ValueError:
        return None
    if client.status in ("closing", "closed"):
        return None
    return client


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


def threads_of(client: Any | None) -> int:
    """Threads that will run the tasks: the cluster's, or the local scheduler's."""
    if client is not None:
        return sum(client.nthreads().values()) or 1
    scheduler = dask.config.get("scheduler", None)
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return 1
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT or 1)


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


def batch_sizes(
    frames: int, total: int, threads: int, single_part: bool, max_batch: int = 8
) -> list[int]:
    """How many consecutive frames each task of a part reads and computes.

    Batches of up to ``max_batch`` frames (setting ``intake_helio.batch-size``) amortise
    dask's per-task cost and let a task fetch one frame while it decodes another; they
    stay small enough that the ``total`` frames of the job give every one of ``threads``
    threads several tasks. A job of one part gets a multiple of ``threads`` tasks of
    equal size (+-1 frame), so that no thread is left with extra frames at the end.

    Parameters
    ----------
    frames : int
        Frames in the part.
    total : int
        Frames the whole job computes.
    threads : int
        Threads of the cluster (or of the local scheduler).
    single_part : bool
        Whether the part is the whole job.
    max_batch : int
        The largest batch.

    Returns
    -------
    list of int
        Batch sizes, in order, summing to ``frames``.
    """
    if frames <= 0:
        return []
    threads = max(1, threads)
    size = max(1, min(max_batch, total // (2 * threads)))
    tasks = -(-frames // size)
    if single_part and tasks % threads:
        tasks = min(frames, tasks + threads - tasks % threads)
    base, extra = divmod(frames, tasks)
    return [base + 1] * extra + [base] * (tasks - extra)
