"""A shaped :class:`~intake_helio.testing.fault_proxy.FaultProxy` in a child process.

:class:`ProxyProcess` runs the proxy in a process of its own, so that pacing and relaying
bodies take no CPU time from the process that measures (its own GIL, its own CPU time); it
is controlled over the child's stdin/stdout and stops when its parent goes away.

Examples
--------
>>> s3 = LocalS3(process=True).start()                             # doctest: +SKIP
>>> with ProxyProcess(s3.endpoint_url, Shaping(latency=0.05)) as proxy:  # doctest: +SKIP
...     proxy.set_shaping(Shaping(latency=0.01))                   # while it runs
...     proxy.stats["throttled"]
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .errors import FaultConfigTypeError, LocalServerError
from .fault_proxy import FaultProxy
from .fault_rules import FaultRule
from .shaping import Shaping

__all__ = ["ProxyProcess", "main"]

_READY = "INTAKE_HELIO_PROXY_READY"
_CHILD = "import sys; from intake_helio.testing.proxy_process import main; main(sys.argv[1:])"


def _rule_dict(rule: FaultRule) -> dict[str, Any]:
    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule) if f.init}


class ProxyProcess:
    """A shaped :class:`~intake_helio.testing.fault_proxy.FaultProxy` in a child process.

    Parameters
    ----------
    upstream : str
        Base URL of the real endpoint (e.g. ``LocalS3(process=True).endpoint_url``).
    shaping : Shaping, optional
        The shaping to start with (None: none).
    rules : sequence of FaultRule
        Faults to inject as well.
    seed, max_requests, max_seconds
        As for ``FaultProxy``.

    Attributes
    ----------
    endpoint_url : str
        ``http://127.0.0.1:PORT`` once started.
    pid : int
        The child's process id (for CPU accounting).
    """

    def __init__(
        self,
        upstream: str,
        shaping: Shaping | None = None,
        rules: Sequence[FaultRule] = (),
        seed: int = 0,
        max_requests: int = 10_000_000,
        max_seconds: float = 24 * 3600,
    ):
        if shaping is not None and not isinstance(shaping, Shaping):
            raise FaultConfigTypeError(f"shaping={shaping!r} must be a Shaping or None")
        self._config = {
            "upstream": upstream,
            "shaping": None if shaping is None else dataclasses.asdict(shaping),
            "rules": [_rule_dict(r) for r in rules],
            "seed": seed,
            "max_requests": max_requests,
            "max_seconds": max_seconds,
        }
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.endpoint_url: str | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise LocalServerError("ProxyProcess is not started; call start() first")
        return self._proc.pid

    def start(self) -> ProxyProcess:
        """Start the child and wait (up to 60 s) until it serves; return ``self``."""
        if self._proc is not None:
            return self
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(self._config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = self._readline(60)
            if not line.startswith(_READY):
                raise LocalServerError(f"the proxy child process did not start: {line!r}")
        except BaseException:
            self.stop()
            raise
        self.endpoint_url = line.split()[1]
        return self

    def _readline(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self._proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not box:
            raise LocalServerError(f"the proxy child process did not answer within {timeout:g} s")
        return box[0]

    def _call(self, op: str, **kwargs: Any) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                raise LocalServerError("ProxyProcess is not running")
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
                self._proc.stdin.flush()
                line = self._readline(30)
            except OSError as exc:
                raise LocalServerError(f"the proxy child process is gone ({exc})") from exc
            if not line:
                raise LocalServerError("the proxy child process exited")
            return json.loads(line)

    @property
    def stats(self) -> dict[str, Any]:
        """The child proxy's ``FaultProxy.stats``."""
        return self._call("stats")

    def reset_stats(self) -> None:
        """Zero the child proxy's counters."""
        self._call("reset")

    def set_shaping(self, shaping: Shaping | None) -> None:
        """Replace the shaping while running (a fresh token bucket and latency RNG)."""
        if shaping is not None and not isinstance(shaping, Shaping):
            raise FaultConfigTypeError(f"shaping={shaping!r} must be a Shaping or None")
        self._call("shaping", shaping=None if shaping is None else dataclasses.asdict(shaping))

    def stop(self) -> None:
        """Stop the child (idempotent): close its stdin, then terminate it if it lingers."""
        proc, self._proc = self._proc, None
        self.endpoint_url = None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """The child of :class:`ProxyProcess`: serve, answer commands on stdin, stop at EOF."""
    config = json.loads(argv[0])
    shaping = config.pop("shaping")
    rules = [FaultRule(**r) for r in config.pop("rules")]
    with FaultProxy(
        config.pop("upstream"),
        rules,
        shaping=None if shaping is None else Shaping(**shaping),
        **config,
    ) as proxy:
        print(f"{_READY} {proxy.endpoint_url}", flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "stats":
                answer: Any = proxy.stats
            elif cmd["op"] == "reset":
                answer = proxy.reset_stats()
            else:  # "shaping"
                s = cmd["shaping"]
                answer = proxy.set_shaping(None if s is None else Shaping(**s))
            print(json.dumps(answer), flush=True)
