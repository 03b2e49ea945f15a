"""The snapshot beacon post-script as the VMSnapshot extension runs it: a real subprocess against
loopback fake IMDS and topic servers. Whatever fails, it exits 0 and says why in one line; it
never waits on a silent server past its own bounds (the subprocess timeout is only a generous
backstop, not a measurement)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "beacon" / "snapshot-beacon.py"
VM_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app"
    "/providers/Microsoft.Compute/virtualMachines/vm-linux-1"
)
TOKEN = "eyJ0eXAiOiJKV1QifQ.beacon-test-token.sig"
BACKSTOP_SECONDS = 60  # far above the script's own 5 s bound: a hang fails the test, timing is not asserted


@dataclass
class Fake:
    """One loopback server: ``mode`` decides its answers; ``requests`` records what it got."""

    mode: str = "ok"
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _serve(fake: Fake) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: bytes | None) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length) if length else b"",
                }
            )
            if fake.mode == "slow":
                fake.release.wait(BACKSTOP_SECONDS)  # never answers while the script waits
                return
            if fake.mode == "trickle":
                # A byte at a time, each well within the per-request socket timeout: only the
                # script's bound on the whole run ends it.
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not fake.release.wait(0.5):
                    self.wfile.write(b"/")
                    self.wfile.flush()
                return
            if fake.mode.startswith("redirect "):
                self.send_response(302)
                self.send_header("Location", fake.mode.split(" ", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fake.mode == "401":
                self.send_response(401)
                self.end_headers()
                return
            payload = body if body is not None else b""
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path.startswith("/metadata/instance/compute/resourceId"):
                self._answer(VM_ID.encode())
            elif self.path.startswith("/metadata/identity/oauth2/token"):
                self._answer(json.dumps({"access_token": TOKEN, "token_type": "Bearer"}).encode())
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            self._answer(b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def imds() -> Iterator[Fake]:
    fake = Fake()
    server = _serve(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def topic() -> Iterator[Fake]:
    fake = Fake()
    server = _serve(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/events"
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


def _refused_url() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run(*args: str, alarm_blocked: bool = False) -> subprocess.CompletedProcess[str]:
    # SIGALRM blocked in the child (the mask survives exec) stands for a call no alarm can
    # interrupt, such as libc's resolver, which retries its poll on EINTR.
    block = (lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})) if alarm_blocked else None
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=BACKSTOP_SECONDS,
        check=False,
        preexec_fn=block,
    )


def test_publishes_one_cloudevent_with_the_vm_id_and_an_imds_token(imds: Fake, topic: Fake) -> None:
    done = _run(topic.url, imds.url)
    assert done.returncode == 0
    assert [r["path"].split("?")[0] for r in imds.requests] == [
        "/metadata/instance/compute/resourceId",
        "/metadata/identity/oauth2/token",
    ]
    assert all(r["headers"].get("Metadata") == "true" for r in imds.requests)
    assert "resource=https%3A%2F%2Feventgrid.azure.net" in imds.requests[1]["path"]
    assert len(topic.requests) == 1
    sent = topic.requests[0]
    assert sent["method"] == "POST"
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Content-Type"].startswith("application/cloudevents+json")
    event = json.loads(sent["body"])
    assert event["specversion"] == "1.0"
    assert event["type"] == "BackupChain.Beacon.SnapshotTaken"
    assert event["source"] == VM_ID
    assert event["time"].endswith("Z") and len(event["time"]) == len("2026-01-01T00:00:00Z")
    assert event["id"]
    assert done.stderr.count("\n") == 1 and "beacon" in done.stderr and "sent for " + VM_ID in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_imds_unreachable_sends_nothing_and_exits_0(topic: Fake) -> None:
    done = _run(topic.url, _refused_url())
    assert done.returncode == 0
    assert topic.requests == []
    assert "no beacon: IMDS metadata unreachable" in done.stderr


def test_imds_silent_sends_nothing_and_exits_0(imds: Fake, topic: Fake) -> None:
    imds.mode = "slow"
    done = _run(topic.url, imds.url)
    assert done.returncode == 0
    assert topic.requests == []
    assert "no beacon: IMDS metadata unreachable" in done.stderr


@pytest.mark.parametrize(
    ("mode", "said"),
    [("refused", "topic unreachable"), ("slow", "topic unreachable"), ("401", "topic answered HTTP 401")],
)
def test_topic_failure_exits_0_and_says_why(imds: Fake, topic: Fake, mode: str, said: str) -> None:
    topic.mode = mode
    url = _refused_url() + "/api/events" if mode == "refused" else topic.url
    done = _run(url, imds.url)
    assert done.returncode == 0
    assert f"no beacon: {said}" in done.stderr
    assert len(imds.requests) == 2  # it got as far as the topic
    assert len(topic.requests) == (0 if mode == "refused" else 1)
    assert TOKEN not in done.stderr + done.stdout


def test_without_a_topic_endpoint_it_asks_nothing_and_exits_0(imds: Fake) -> None:
    done = _run()
    assert done.returncode == 0
    assert "no beacon: postScriptParams[0] must be the topic endpoint URL" in done.stderr
    assert imds.requests == []


def test_an_imds_error_answer_sends_nothing(imds: Fake, topic: Fake) -> None:
    done = _run(topic.url, imds.url + "/elsewhere")
    assert done.returncode == 0
    assert topic.requests == []
    assert "no beacon: IMDS metadata answered HTTP 404" in done.stderr


def test_a_call_no_alarm_can_interrupt_is_still_bounded_and_exits_0(imds: Fake, topic: Fake) -> None:
    imds.mode = "trickle"
    done = _run(topic.url, imds.url, alarm_blocked=True)
    assert done.returncode == 0
    assert "no beacon: out of time after 5 s" in done.stderr
    assert topic.requests == []


def test_a_redirecting_topic_never_gets_the_token_forwarded(imds: Fake, topic: Fake) -> None:
    elsewhere = Fake()
    server = _serve(elsewhere)
    try:
        topic.mode = f"redirect http://127.0.0.1:{server.server_address[1]}/collect"
        done = _run(topic.url, imds.url)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0
    assert len(topic.requests) == 1
    assert elsewhere.requests == []
    assert "no beacon: topic answered HTTP 302" in done.stderr


def test_a_plain_http_topic_off_loopback_is_refused_before_any_token(imds: Fake) -> None:
    done = _run("http://beacon-topic.example/api/events", imds.url)
    assert done.returncode == 0
    assert imds.requests == []
    assert "no beacon: postScriptParams[0] must be an https:// endpoint" in done.stderr


def test_a_client_id_names_the_user_assigned_identity_to_ask_imds_for(imds: Fake, topic: Fake) -> None:
    done = _run(topic.url, imds.url, "11111111-2222-3333-4444-555555555555")
    assert done.returncode == 0
    assert len(topic.requests) == 1
    token_request = imds.requests[1]["path"]
    assert token_request.startswith("/metadata/identity/oauth2/token?")
    assert "&client_id=11111111-2222-3333-4444-555555555555" in token_request
