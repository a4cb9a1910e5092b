"""How a whole read of a large file is split into concurrent ranged requests (issue 17)."""

from __future__ import annotations

import itertools

import pytest

from intake_helio.io.transport import split_ranges

MiB = 2**20


def test_a_14_mb_frame_in_ranges_of_at_most_4_or_8_mib():
    size = 14 * 10**6
    ranges = split_ranges(size, size + MiB, 4 * MiB)
    assert ranges == [
        (0, 3500000),
        (3500000, 7000000),
        (7000000, 10500000),
        (10500000, size + MiB + 1),
    ]
    # the default part (8 MiB): an AIA frame in two ranges of 7 MB
    assert split_ranges(size, size + MiB, 8 * MiB) == [(0, 7000000), (7000000, size + MiB + 1)]


def test_ranges_cover_the_file_without_gaps_and_end_one_past_the_limit():
    for size in (MiB + 1, 2 * MiB, 2 * MiB + 1, 3 * MiB - 1, 10 * MiB + 5, 33 * MiB):
        limit = size + 1000
        ranges = split_ranges(size, limit, MiB)
        assert ranges[0][0] == 0 and ranges[-1][1] == limit + 1
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        inner = [e - s for s, e in ranges[:-1]] + [size - ranges[-1][0]]
        assert max(inner) - min(inner) <= 1  # equal parts, of at most MiB each
        assert len(ranges) == -(-size // MiB) and max(inner) <= MiB
        assert min(inner) >= MiB // 2


@pytest.mark.parametrize(
    "size, limit, part",
    [
        (0, MiB, MiB),
        (MiB, 2 * MiB, MiB),
        (MiB - 1, 3 * MiB, MiB),
        (4 * MiB, 4 * MiB - 1, MiB),
        (10 * MiB, 11 * MiB, 0),
    ],
)
def test_one_request_when_small_unknown_past_the_limit_or_disabled(size, limit, part):
    assert split_ranges(size, limit, part) is None
