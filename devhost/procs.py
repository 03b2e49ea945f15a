"""Start local service processes (devhost, emulators) and wait for their JSON start line.

Used by tests, the demo and the benchmarks: each service prints exactly one JSON object on its
first stdout line once it is listening; everything else goes to stderr (kept in a log file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ServiceStartError(RuntimeError):
    """A service exited or stayed silent instead of announcing itself."""


@dataclass
class Service:
    """A running service process and what it announced (e.g. ``url``, ``ca``, keys)."""

    name: str
    process: subprocess.Popen[str]
    info: dict[str, Any]
    log_path: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> int:
        """Stop the process (SIGTERM, or SIGKILL with ``kill=True``) and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._drain is not None and self._drain.ident is not None:  # started
            self._drain.join(timeout=timeout)
        return int(self.process.returncode)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_service(
    name: str,
    module_args: Sequence[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    program: Sequence[str] = (),
) -> Service:
    """Run ``python -m <module_args...>`` (or ``program`` with ``module_args`` as its arguments,
    e.g. an installed console script) and return once it printed its JSON start line."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log_file = open(log_path, "a")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(
        [*program, *module_args] if program else [sys.executable, "-m", *module_args],
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        env=full_env,
        cwd=str(cwd) if cwd else None,
    )
    first_line: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        # Read the announcement, then keep the pipe empty so the child never blocks on stdout.
        assert process.stdout is not None
        for line in process.stdout:
            if not first_line:
                first_line.append(line)
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, name=f"{name}-stdout", daemon=True)
    service = Service(name, process, {}, log_path, reader)
    try:
        log_file.close()
        reader.start()
        ready.wait(timeout)
    except BaseException:  # interrupted while it starts (Ctrl-C, SIGTERM): the caller never gets it
        service.stop(kill=True)
        raise
    if not first_line:
        service.stop(kill=True)
        raise ServiceStartError(
            f"{name} did not announce itself within {timeout}s (exit code {process.returncode}); "
            f"log tail:\n{service.log_tail()}"
        )
    try:
        service.info = json.loads(first_line[0])
    except json.JSONDecodeError:
        service.stop(kill=True)
        raise ServiceStartError(f"{name} printed a non-JSON start line: {first_line[0]!r}") from None
    return service


def wait_until(predicate: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``predicate`` (every 20 ms) until it returns something truthy; raise AssertionError
    naming ``what`` after ``timeout`` seconds. Bounded: it always stops by itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
