"""Index files line by line (issue 26 item 5), through the real local S3 server.

A demo dataset whose yearly index gains a line with one field too many, a row whose stop
is before its start and an exact duplicate row: ``to_dataarray(index_errors="report")``
opens it with every good frame valued (each file once), and the two bad lines are listed
(a :class:`~intake_helio.HelioWarning` naming file and line; ``files(errors="report")``
has them in ``attrs["bad_rows"]``); the default ``index_errors="raise"`` names the first.
"""

from __future__ import annotations

import numpy as np
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset

FRAMES = 6


def test_bad_lines_are_listed_and_the_good_frames_valued(s3):
    data = write_demo_dataset(
        "s3://helio-lines/", s3.storage_options, frames=FRAMES, size=32, corrupt=0
    )
    fs = s3.filesystem()
    index = next(p for p in fs.find("helio-lines/sdo/aia/registries") if p.endswith(".csv"))
    lines = fs.cat_file(index).decode().splitlines()
    header, rows = lines[0], lines[1:]
    assert len(rows) == FRAMES
    first = rows[0].split(",")
    backwards = ",".join([first[1], first[0], *first[2:]])  # stop before start
    new = [header, rows[0], rows[1] + ",surplus", *rows[1:], backwards, rows[3]]
    # line 3: too many fields; line 9: stop before start; line 10: a duplicate of line 6
    fs.pipe_file(index, ("\n".join(new) + "\n").encode())
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options, cache=False)
    ds = bucket[data.dataset_id]

    with pytest.raises(ih.IndexParseError, match=r"line 3: wrong number of fields") as err:
        ds.to_dataarray(data.start, data.stop)
    assert err.value.line == 3 and err.value.path.endswith(index.rsplit("/", 1)[1])

    with pytest.warns(ih.HelioWarning) as caught:
        frames = ds.to_dataarray(data.start, data.stop, index_errors="report")
    text = " | ".join(str(w.message) for w in caught)
    assert "dropped 1 exact duplicate index row(s)" in text
    assert "skipped 2 bad index row(s)" in text
    assert "line 3: wrong number of fields (5; expected 4" in text
    assert "line 9: stop (" in text and "is before start" in text
    assert frames.sizes["time"] == FRAMES  # every file once
    means = frames.mean(("y", "x")).values
    np.testing.assert_allclose(means, np.asarray(data.expected_mean), rtol=1e-6)

    with pytest.warns(ih.HelioWarning, match="dropped 1"):
        df = ds.files(data.start, data.stop, errors="report")
    assert [b.line for b in df.attrs["bad_rows"]] == [3, 9]
    assert all(b.file == "s3://" + index for b in df.attrs["bad_rows"])
