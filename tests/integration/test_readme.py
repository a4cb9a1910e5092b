"""The README runs as written: every ```python block of README.md, against a local S3 server.

The blocks are read from ``README.md`` when the tests are collected (nothing is copied here)
and each is one test case, named by its number, line and first line, so a failure names the
block. They run in README order in **one namespace**, as a reader would run them top to bottom
in one notebook (later sections use ``ih``, ``bucket`` and ``aia`` from earlier ones); the
namespace's ``__name__`` is ``"__main__"``, as in a notebook or a script, so the main-guard
block really starts its local cluster. A block after a failed one may fail for that reason;
the first failure is the one to read.

A block preceded by ``<!-- readme-test: skip: REASON -->`` (blank lines allowed in between)
is reported as skipped with that reason; the README uses this only for blocks that need
HelioCloud's own dask-gateway.

How the blocks reach the local server, with nothing of the library patched: the test starts
the session's moto server on 127.0.0.1 (an ephemeral port; ``tests/conftest.py``), writes
synthetic AIA data with :func:`~intake_helio.testing.demo_data.write_demo_dataset` into a
bucket named as in the README, ``gov-nasa-hdrl-data1`` (made publicly readable with a bucket
policy, so ``anon=True`` works as on HelioCloud), and sets only what a user would set:

- ``AWS_ENDPOINT_URL`` (botocore's endpoint variable; s3fs clients without an
  ``endpoint_url`` use it) -> the local server;
- ``ROOT_CATALOG_REGISTRY_URL`` -> the local bucket's registry JSON (its one endpoint is
  named ``"HelioCloud, including SDO"``, as HelioCloud's);
- ``INTAKE_HELIO_DEMO_ENDPOINT_URL`` -> the same server, where the demo's own bucket
  ``helio-demo`` holds what ``intake-helio demo --serve`` publishes
  (:func:`~intake_helio.app.demo.write_demo_channels`, smaller frames), for the
  ``catalogs/demo.yaml`` block;
- ``INTAKE_HELIO_CACHE_DIR`` (a temporary directory) and ``MPLBACKEND=Agg``; the working
  directory is a temporary one holding a link to the repository's ``catalogs/`` (blocks
  write files such as ``hdrl.yaml`` there).

The data, few frames yet something for every block to read (about 20 s in all on 2 cores):

- ``aia_0094``: 2688 x 2688 frames (``SIZE``: the README's pixel window of ``ih.to_map``
  ends at x = 2600), one pixel array reused: 6 frames from 2020-01-01T12:00 every 76 days
  (2020-01-01, 03-17, 06-01, ..., 2021-01-15: two yearly indexes), one of them truncated
  (corrupt, as in the demo), plus a burst of 11 frames on 2020-03-10 every 12 s, written as
  a second dataset whose index rows are then moved into ``aia_0094``'s (so that
  ``sel(time=March)[::10]`` keeps two frames to plot); the catalog's ``stop`` is set 12 s
  after the last frame, as for real data, so that "the dataset's last day" has a frame;
- ``mms1_fgm_srvy_l2``: two daily CDF files of a 16-s magnetometer
  (:func:`~intake_helio.testing.cdf_files.magnetometer_cdf`), for the time-series block;
- ``aia_0171``: 5 frames every 4 minutes from 2020-06-01T11:56:03 (one 3 s after the
  94 A frame of 2020-06-01T12:00, one 3 s after the README's 12:00), none corrupt, as the
  README reads them with the default ``on_error="raise"``.

Everything is torn down at the end: environment, working directory, s3fs' instance cache,
matplotlib figures, and the server's buckets (reset).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BUCKET = "gov-nasa-hdrl-data1"
ROOT = f"s3://{BUCKET}/"
REGISTRY_NAME = "HelioCloud, including SDO"
SIZE = 2688  # > 2600, the x end of the README's ih.to_map window; a multiple of 64 for `binned`

_SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->")
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    index: int
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None

    @property
    def first_line(self) -> str:
        return next((s.strip() for s in self.code.splitlines() if s.strip()), "")

    @property
    def id(self) -> str:
        return f"{self.index}-L{self.line}-{self.first_line[:40]}"


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text`` in order, with their skip reasons."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    skip: str | None = None
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        marker = _SKIP.search(line)
        if marker:
            skip = marker.group(1)
        elif fence:
            body = []
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                body.append(lines[j])
                j += 1
            if j == len(lines):
                raise ValueError(f"README.md:{i + 1}: unclosed ``` fence")
            if fence.group(1) == "python":
                blocks.append(Block(len(blocks), i + 1, "\n".join(body) + "\n", skip))
            skip = None
            i = j
        elif line.strip():
            skip = None  # a marker applies only to the fence right after it
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5, "README.md lost its ```python blocks?"


def _public_read(s3_server) -> None:
    import boto3

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:Get*", "s3:List*", "s3:Head*"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.key,
        aws_secret_access_key=s3_server.secret,
        region_name="us-east-1",
    )
    client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))


def _merge_into(s3_server, source: str, target: str, years: list[str]) -> None:
    """Move the index rows of dataset ``source`` into ``target``'s and drop ``source``."""
    fs = s3_server.filesystem()
    index = f"{BUCKET}/sdo/aia/registries"
    for year in years:
        rows = fs.cat_file(f"{index}/{source}_{year}.csv").decode().splitlines()[1:]
        body = fs.cat_file(f"{index}/{target}_{year}.csv").decode().rstrip("\n")
        fs.pipe_file(f"{index}/{target}_{year}.csv", "\n".join([body, *rows, ""]).encode())
        fs.rm_file(f"{index}/{source}_{year}.csv")
    path = f"{BUCKET}/catalog.json"
    catalog = json.loads(fs.cat_file(path))
    catalog["catalog"] = [d for d in catalog["catalog"] if d["id"] != source]
    fs.pipe_file(path, json.dumps(catalog, indent=1).encode())


def _end_at_last_frame(s3_server, dataset_id: str, stop) -> None:
    """Set the catalog's ``stop`` of ``dataset_id`` to ``stop`` (as real data, which ends
    one cadence of 12 s after its last frame; the generator's ends one of its cadences,
    76 days here, after it, which would leave the dataset's last day empty)."""
    fs = s3_server.filesystem()
    path = f"{BUCKET}/catalog.json"
    catalog = json.loads(fs.cat_file(path))
    (entry,) = [d for d in catalog["catalog"] if d["id"] == dataset_id]
    entry["stop"] = stop.strftime("%Y-%m-%dT%H:%M:%SZ")
    fs.pipe_file(path, json.dumps(catalog, indent=1).encode())


def _write_mms_like(so) -> None:
    """Two daily CDF files of a magnetometer (16 s), as the README's time-series block reads."""
    from intake_helio.testing.cdf_files import magnetometer_cdf
    from intake_helio.testing.series_data import SeriesFile, publish_series

    day = pd.Timedelta("1D")
    files = [
        SeriesFile(f"mms/mms1/fgm/{t:%Y%m%d}.cdf", t, t + day, magnetometer_cdf(t, t + day, "16s"))
        for t in pd.date_range("2020-01-01", periods=2, freq="1D")
    ]
    publish_series(
        ROOT, so, "mms1_fgm_srvy_l2", files, filetype="cdf", registry_name=REGISTRY_NAME,
        index_dir="mms/registries/",
    )  # fmt: skip


@pytest.fixture(scope="module")
def readme_namespace(s3_server, tmp_path_factory):
    """The shared namespace of the README's blocks, with the local data and environment."""
    import matplotlib
    import s3fs

    from intake_helio.app.demo import write_demo_channels
    from intake_helio.testing.demo_data import write_demo_dataset

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s3_server.reset()
    s3fs.S3FileSystem.clear_instance_cache()
    so = s3_server.storage_options
    aia94 = write_demo_dataset(
        ROOT,
        so,
        frames=6,
        size=SIZE,
        start="2020-01-01T12:00",
        cadence="76D",
        reuse=1,
        registry_name=REGISTRY_NAME,
    )
    assert aia94.corrupt and not any("20200601" in key for key in aia94.corrupt)
    burst = write_demo_dataset(
        ROOT,
        so,
        frames=11,
        size=SIZE,
        start="2020-03-10T00:00",
        cadence="12s",
        corrupt=0,
        reuse=1,
        dataset_id="aia_0094_burst",
        registry_name=REGISTRY_NAME,
    )
    _merge_into(s3_server, burst.dataset_id, aia94.dataset_id, ["2020"])
    write_demo_dataset(
        ROOT,
        so,
        frames=5,
        size=SIZE,
        start="2020-06-01T11:56:03",
        cadence="4min",
        wavelength=171,
        corrupt=0,
        reuse=1,
        registry_name=REGISTRY_NAME,
    )
    _write_mms_like(so)
    _end_at_last_frame(s3_server, "aia_0094", aia94.times[-1] + pd.Timedelta("12s"))
    _public_read(s3_server)
    write_demo_channels(so, frames=48, size=64)

    work = tmp_path_factory.mktemp("readme")
    (work / "catalogs").symlink_to(README.parent / "catalogs", target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
        mp.setenv("INTAKE_HELIO_DEMO_ENDPOINT_URL", s3_server.endpoint_url)
        mp.setenv("ROOT_CATALOG_REGISTRY_URL", f"{ROOT}HelioDataRegistry.json")
        mp.setenv("INTAKE_HELIO_CACHE_DIR", str(work / "cache"))
        mp.setenv("MPLBACKEND", "Agg")
        mp.chdir(work)
        try:
            yield {"__name__": "__main__", "__builtins__": __builtins__}
        finally:
            plt.close("all")
            s3fs.S3FileSystem.clear_instance_cache()
    s3_server.reset()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, readme_namespace):
    if block.skip:
        pytest.skip(block.skip)
    import matplotlib.pyplot as plt

    # padded so that tracebacks name README.md and show its own lines
    code = compile("\n" * block.line + block.code, str(README), "exec")
    try:
        exec(code, readme_namespace)
    finally:
        plt.close("all")
