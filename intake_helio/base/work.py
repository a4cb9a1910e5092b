"""How work is cut into tasks: the threads that will run them, and batch sizes.

Below every layer that builds graphs (the frames' and the series' lazy arrays, the engine's
jobs): the active ``distributed.Client`` (if any), its threads, and how many consecutive
items each task takes.
"""

from __future__ import annotations

import sys
from typing import Any

import dask

__all__ = ["active_client", "batch_sizes", "threads_of"]


def active_client() -> Any | None:
    """Return the current (default, not closed) ``distributed.Client``, or None.

    Inside ``with ih.cluster(...) as client:`` this is ``client``; outside any client
    the local dask scheduler is used. ``distributed`` is never imported here: it is
    looked up among the modules already imported (no client exists before it is).
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        client = distributed.default_client()
    except ValueError:
        return None
    if client.status in ("closing", "closed"):
        return None
    return client


def threads_of(client: Any | None) -> int:
    """Threads that will run the tasks: the cluster's, or the local scheduler's."""
    if client is not None:
        return sum(client.nthreads().values()) or 1
    scheduler = dask.config.get("scheduler", None)
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return 1
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT or 1)


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
