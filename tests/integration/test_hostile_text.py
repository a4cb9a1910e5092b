"""Text from content never reaches a terminal raw (issue 26 item 6).

A bucket on the real local S3 server whose catalog.json titles and descriptions carry a
right-to-left override, zero-width characters and ANSI/OSC escape sequences: every repr
and every CLI line shows them made safe by the one sanitiser.
"""

from __future__ import annotations

import json

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import range_argv, s3_argv

EVIL = "\x1b[2J\x1b]0;owned\x07AIA \u202e49 \u200bÅ\x1b[0m"
RAW = ("\x1b", "\u202e", "\u200b", "\x07")


def _hostile_bucket(s3):
    so = s3.storage_options
    s3.reset()
    data = write_demo_dataset("s3://helio-hostile/", so, frames=4, size=32, corrupt=0)
    fs = s3.filesystem()
    path = "helio-hostile/catalog.json"
    catalog = json.loads(fs.cat_file(path))
    for entry in catalog["catalog"]:
        entry["title"] = EVIL
        entry["description"] = EVIL + " description"
    catalog["name"] = EVIL
    fs.pipe_file(path, json.dumps(catalog).encode())
    fs.invalidate_cache()
    return data, so


def _clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, (ch, text)


def test_reprs_and_cli_lines_never_show_raw_escapes(s3, cli):
    data, so = _hostile_bucket(s3)
    bucket = ih.open_bucket(data.root, so)
    ds = bucket[data.dataset_id]
    _clean(ds.title)  # made safe where the catalog is parsed (escapes dropped whole)
    assert ds.title == "AIA  49  Å"
    for text in (repr(bucket), repr(ds), ds._repr_html_(), str(bucket.to_dataframe())):
        _clean(text)
    frames = ds.to_dataarray(data.start, data.stop)
    _clean(repr(frames.attrs))
    argv = s3_argv(s3.endpoint_url, s3.key, s3.secret)
    code, out, err = cli(["ls", data.root, *argv])
    assert code == 0, err
    _clean(out + err)
    assert "AIA  49  Å" in out  # the title is there, made safe
    code, out, err = cli(
        [*range_argv("files", data.root, [data.dataset_id], data.start, data.stop), *argv]
    )
    assert code == 0, err
    _clean(out + err)
