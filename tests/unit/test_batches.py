"""How ih.irradiance splits frames into tasks, and the read-ahead of batched tasks (no sockets)."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest

import intake_helio.fits.frame as fits_frames
from intake_helio.base.settings import current
from intake_helio.compute.batches import map_batch
from intake_helio.compute.scheduling import batch_sizes
from intake_helio.frames.spec import FrameSpec
from intake_helio.frames.tasks import MapTask
from intake_helio.testing.aia import frame_bytes, make_aia_frame

MAX_BATCH = 8  # the default of the intake_helio.batch-size setting


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 16, 200])
@pytest.mark.parametrize("frames", [1, 2, 5, 30, 48, 255, 256])
@pytest.mark.parametrize("single_part", [True, False])
def test_batch_sizes_cover_the_part_in_balanced_batches(frames, threads, single_part):
    total = frames if single_part else 129_758
    sizes = batch_sizes(frames, total, threads, single_part, MAX_BATCH)
    assert sum(sizes) == frames
    assert all(1 <= s <= MAX_BATCH for s in sizes)
    assert max(sizes) - min(sizes) <= 1
    if single_part:
        # handed out in order to whichever thread is free first (threads of equal speed),
        # no thread ends with more than its fair share of frames
        loads = [0] * threads
        for s in sizes:
            loads[loads.index(min(loads))] += s
        assert max(loads) == -(-frames // threads)


def test_batch_sizes_give_every_thread_several_tasks_of_a_small_job():
    # 30 frames on 2 threads: 6 tasks of 5, 3 per thread
    assert batch_sizes(30, 30, 2, True) == [5] * 6
    # a year on 200 threads: batches of MAX_BATCH
    assert batch_sizes(256, 129_758, 200, False) == [MAX_BATCH] * (256 // MAX_BATCH)
    # more threads than frames: one frame per task
    assert batch_sizes(5, 5, 16, True) == [1] * 5
    assert batch_sizes(0, 0, 2, True) == []


def test_start_whole_read_is_none_without_an_event_loop_of_the_filesystem():
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/x.fits", b"abc")
    assert fits_frames.start_whole_read(fs, "/x.fits") is None
    assert fits_frames.start_whole_read(fsspec.filesystem("file"), __file__) is None


@pytest.fixture
def frames_in_memory():
    fs = fsspec.filesystem("memory")
    keys = []
    for i in range(5):
        t = np.datetime64("2020-06-01T00:00") + np.timedelta64(12 * i, "s")
        raw = frame_bytes(make_aia_frame(t, size=40, seed=i))
        path = f"/batches/f{i}.fits"
        fs.pipe_file(path, raw if i != 3 else raw[:3000])  # frame 3 is truncated
        keys.append(f"memory://{path}")
    yield keys
    fs.rm("/batches", recursive=True)


@pytest.mark.parametrize("whole_file", [True, None])
def test_a_batch_equals_its_frames_one_by_one(frames_in_memory, whole_file):
    full = slice(0, 40)
    rows = full if whole_file else slice(0, 39)  # a window: ranged reads, no read-ahead
    spec = FrameSpec(tuple(frames_in_memory), {}, "auto", full, full, "DN", (40, 40), current())
    window = (rows, full, None, None)
    funcs = [("mean", "mean"), ("max", "max"), ("count", "count")]
    one_by_one = [
        map_batch(MapTask(spec, window, tuple(funcs), "DN"), [k])[0] for k in frames_in_memory
    ]
    assert map_batch(MapTask(spec, window, tuple(funcs), "DN"), frames_in_memory) == one_by_one
    assert [st for _, st in one_by_one] == ["ok", "ok", "ok", "truncated", "ok"]


@pytest.mark.parametrize(
    "filesize, expected",
    [
        (14_000_000, 8),  # AIA full frames: batch-size (64 MiB / 14 MB is 4)
        (1_000_000, 67),  # 64 MiB of 1 MB files
        (50_000, 256),  # small files: a part (256) in one task
        (0, 8),  # sizes unknown: batch-size
    ],
)
def test_tasks_take_more_small_files(filesize, expected):
    from intake_helio.compute.batches import most_per_task
    from intake_helio.frames.spec import Resolved

    keys = tuple(f"s3://b/f{i}.fits" for i in range(600))
    full = slice(0, 8)
    spec = FrameSpec(keys, {}, 1, full, full, "DN", (8, 8), current(), (filesize,) * 600)
    plan = Resolved((spec,), tuple((0, k) for k in keys), full, full)
    assert most_per_task(plan, current(), 256) == expected
    assert most_per_task(None, current(), 256) == MAX_BATCH  # the generic path
    sizes = batch_sizes(256, 129_758, 8, False, most_per_task(plan, current(), 256))
    assert sum(sizes) == 256 and max(sizes) <= expected


def test_a_part_of_a_year_does_not_ship_the_years_file_list():
    import pickle

    from intake_helio.compute.batches import batch_tasks
    from intake_helio.frames.spec import Resolved

    n = 20_000
    keys = tuple(f"s3://bucket/aia/2020/f{i:06d}.fits" for i in range(n))
    full = slice(0, 8)
    spec = FrameSpec(keys, {}, 1, full, full, "DN", (8, 8), current(), tuple(range(1, n + 1)))
    assert len(pickle.dumps(spec)) > 500_000  # the whole list
    plan = Resolved((spec,), tuple((0, k) for k in keys), full, full)
    idx = range(256, 512)
    tasks, spans = batch_tasks(plan, idx, [("mean", "mean")], lambda s: "DN", [64] * 4, "t")
    assert spans == [(256, 320), (320, 384), (384, 448), (448, 512)]
    assert len(pickle.dumps(tasks)) < 100_000
    sub = spec.subset(keys[256:320])
    assert sub.datakeys == keys[256:320] and sub.filesize(keys[300]) == 301
    assert (sub.hdu, sub.rows, sub.cols, sub.shape, sub.settings) == (
        spec.hdu, spec.rows, spec.cols, spec.shape, spec.settings
    )  # fmt: skip


@pytest.mark.parametrize(
    "filesize, depth",
    [(15_000_000, 2), (6_000_000, 2), (4_000_000, 4), (1_000_000, 16), (8_000, 32), (0, 2)],
)
def test_small_files_are_fetched_further_ahead(filesize, depth):
    keys = tuple(f"s3://b/f{i}.fits" for i in range(64))
    full = slice(0, 8)
    spec = FrameSpec(keys, {}, 1, full, full, "DN", (8, 8), current(), (filesize,) * 64)
    task = MapTask(spec, (full, full, None, None), (("mean", "mean"),), "DN")
    assert task.read_ahead(keys) == depth  # read-ahead 2, read-ahead-bytes 16 MiB


class _FlakyScheduler:
    """A client whose scheduler refuses ``fails`` identity queries, then answers."""

    def __init__(self, fails: int):
        self.fails = fails
        self.calls = 0
        self.scheduler = self

    def identity(self, n_workers):
        return {"workers": {"tcp://w1": {"nthreads": 2}}, "n_workers": n_workers}

    def sync(self, func, **kwargs):
        self.calls += 1
        if self.calls <= self.fails:
            raise OSError("Timed out during handshake")
        return func(**kwargs)


def test_scheduler_workers_retries_a_failed_query_and_never_answers_from_a_stale_cache(
    monkeypatch,
):
    from intake_helio.compute import scheduling

    monkeypatch.setattr(scheduling.time, "sleep", lambda s: None)
    client = _FlakyScheduler(fails=2)
    assert scheduling.scheduler_workers(client) == {"tcp://w1": {"nthreads": 2}}
    assert client.calls == 3
    # a scheduler that keeps failing raises its error instead of an empty dict
    with pytest.raises(OSError, match="handshake"):
        scheduling.scheduler_workers(_FlakyScheduler(fails=10), attempts=3)
