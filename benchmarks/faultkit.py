"""What benchmarks/faults.py and benchmarks/hostile.py share: the table's rows, the canary
credentials and the capture that searches everything a user could see for them."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGGERS = ("intake_helio", "distributed", "s3fs", "dask_gateway")
CANARY_KEY = "AKIACANARYB7E21F94D3"
CANARY_SECRET = "canary-secret-5b0c8e17a9f24d63"
CANARY_TOKEN = "canary-session-token-2d9e64fa81c7"
CANARY_PASSWORD = "canary-gateway-password-8f3a1c"
CANARIES = (CANARY_KEY, CANARY_SECRET, CANARY_TOKEN, CANARY_PASSWORD)
CREDENTIALS = {"key": CANARY_KEY, "secret": CANARY_SECRET, "token": CANARY_TOKEN}


@dataclass
class Row:
    scenario: str
    frames: int = 0
    valued: int = 0
    reason: int = 0
    injected: int = 0
    survived: int = 0
    retried: int = 0
    lost: int = 0
    secrets: int = 0
    seconds: float = 0.0
    note: str = ""


# --------------------------------------------------------------------------- capture
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still searched raw
            self.lines.append(f"{record.msg!r} {record.args!r}")


class Capture:
    """This process's fd 1 and 2 (inherited by child processes) in a file, plus log records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = os.dup(1)
        self.records = _Records()

    def start(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in stop()
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        for name in LOGGERS:  # on each logger: distributed's do not propagate to the root
            logging.getLogger(name).setLevel(logging.DEBUG)
            logging.getLogger(name).addHandler(self.records)

    def stop(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._out, 1)
        os.dup2(self._out, 2)
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self.records)
        self._file.close()

    def say(self, text: str) -> None:
        """Print to the real stdout (not captured)."""
        os.write(self._out, (text + "\n").encode())

    def mark(self) -> tuple[int, int]:
        sys.stdout.flush()
        sys.stderr.flush()
        return self.path.stat().st_size, len(self.records.lines)

    def since(self, mark: tuple[int, int]) -> str:
        sys.stdout.flush()
        sys.stderr.flush()
        with open(self.path, "rb") as f:
            f.seek(mark[0])
            raw = f.read().decode(errors="replace")
        return raw + "\n".join(self.records.lines[mark[1] :])


def count_secrets(*texts: Any) -> int:
    found = 0
    for text in texts:
        s = text if isinstance(text, str) else repr(text)
        found += sum(s.count(c) for c in CANARIES)
    return found


def files_text(root: Path) -> str:
    if not root.exists():
        return ""
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(root.rglob("*")) if p.is_file()
    )


def pickles(root: Path) -> list[str]:
    """Files that are pickles (by name or by the pickle protocol 2+ magic byte)."""
    out = []
    for p in root.rglob("*"):
        if p.is_file() and (p.suffix in (".pkl", ".pickle") or p.read_bytes()[:1] == b"\x80"):
            out.append(str(p))
    return out


def cluster_logs(client) -> str:
    try:
        workers = client.get_worker_logs(n=10_000)
        sched = client.get_scheduler_logs(n=10_000)
    except Exception:
        return ""
    return repr(workers) + repr(sched)


def print_table(rows: list[Row], say) -> None:
    head = (
        f"{'scenario':<36}{'frames':>8}{'valued':>8}{'reason':>8}{'inject':>8}"
        f"{'surviv':>8}{'retried':>8}{'lost':>6}{'secret':>7}{'s':>7}  note"
    )
    say(head)
    say("-" * len(head))
    for r in rows:
        say(
            f"{r.scenario:<36}{r.frames:>8}{r.valued:>8}{r.reason:>8}{r.injected:>8}"
            f"{r.survived:>8}{r.retried:>8}{r.lost:>6}{r.secrets:>7}{r.seconds:>7.1f}  {r.note}"
        )
