"""``./dev serve --timeline``'s watcher (demo/timeline_collect.RunPictures) against a devhost that
does not answer: a real request to a loopback port nobody listens on. Drawing pictures is a side
job of the served stack, so a failed look is said once and never stops ./dev serve."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from demo.stack import Stack
from demo.timeline_collect import RunPictures
from devhost.procs import Service
from localclock.clock import Clock


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_devhost_that_does_not_answer_is_said_once_and_does_not_stop_serve(tmp_path: Path) -> None:
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "pass"], text=True
    )  # the Service's process; only its url is used
    stand_in.wait(timeout=30)
    url = f"http://127.0.0.1:{_closed_port()}"
    stack = Stack(tmp_path, Clock.manual(tmp_path / "clock"), {"function": "k", "masterKey": "m"})
    stack.services["devhost"] = Service("devhost", stand_in, {"url": url}, tmp_path / "devhost.log")
    said: list[str] = []
    pictures = RunPictures(stack, ["c1"], tmp_path, said.append)
    for _ in range(2):
        pictures.next_look = 0.0  # look now, not LOOK_EVERY later
        pictures.look()
    assert len(said) == 1, said
    assert said[0].startswith("timeline: listing the runs of c1 failed:") and "Connection refused" in said[0]
    assert list(tmp_path.glob("*.svg")) == []
