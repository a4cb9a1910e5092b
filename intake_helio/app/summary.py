"""What a job did: :class:`JobSummary` (frame counts, failures, rate, files, notes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..base.reasons import Reason
from ..base.text import as_text

__all__ = ["JobSummary", "summarize"]


@dataclass
class JobSummary:
    """What a run did: frame counts, failures by reason, time and rate, files written."""

    frames: int
    ok: int
    failed: dict[str, int]
    elapsed: float
    computed: int
    paths: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Per channel of a run of several: ``{dataset id: (frames, ok)}``.
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: What the counts count: ``"frames"`` (images) or ``"files"`` (a time series' files).
    items: str = "frames"

    @property
    def files_per_second(self) -> float:
        """Frames computed (read and reduced) per second of the run."""
        return self.computed / self.elapsed if self.elapsed > 0 else float("nan")

    def text(self) -> str:
        """The summary as the CLI prints it, one fact a line (notes last)."""
        lines = [
            f"{self.items}: {self.frames}  ok: {self.ok}  failed: {sum(self.failed.values())}",
        ]
        for name, (frames, ok) in self.channels.items():
            lines.append(f"  channel {name}: frames: {frames}  ok: {ok}  failed: {frames - ok}")
        for reason, count in sorted(self.failed.items(), key=lambda kv: -kv[1]):
            lines.append(f"  failed ({reason}): {count}")
        lines.append(
            f"elapsed: {self.elapsed:.1f} s  computed: {self.computed} {self.items}  "
            f"rate: {self.files_per_second:.2f} files/s"
        )
        for kind, path in self.paths.items():
            lines.append(f"wrote {kind}: {path}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def summarize(status, elapsed: float, computed: int, paths, notes=(), channels=()) -> JobSummary:
    """What a run did; ``status`` is ``(time,)``, or ``(channel, time)`` with ``channels``."""
    status = as_text(status)
    ok = status == str(Reason.OK)
    per_channel = {
        str(name): (int(ok[k].size), int(ok[k].sum())) for k, name in enumerate(channels)
    }
    counts = (int(status.size), int(ok.sum()), dict(Counter(status[~ok].tolist())))
    return JobSummary(*counts, elapsed, computed, dict(paths), list(notes), per_channel)
