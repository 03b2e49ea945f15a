"""The Recovery Services emulator models the Linux snapshot beacon (docs/beacon.md): a VM with a
``postScript`` POSTs one SnapshotTaken CloudEvent, with a managed-identity bearer token, at the
in-guest snapshot moment, and the job shows Take Snapshot Completed only ``gapSeconds`` later (the
post-script runs right after the snapshot, before the job's task status updates). A topic that
fails loses the beacon; the job completes anyway. Windows VMs have no post-script framework."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emulators.recoveryservices.scenario import ScenarioError, parse
from tests.integration.rs_support import (
    CLOCK_START,
    RG,
    VAULT,
    Emulator,
    far_policies,
    scenario,
    start_emulator,
    vm_resource_id,
)
from tests.integration.rs_support import vm_entry as rs_vm

GAP = 20.0
SNAPSHOT_SECONDS = 360.0  # snapshotMinutes [6, 6]


class Topic:
    """A loopback topic recording what it was sent; ``status`` is its answer."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        topic = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                topic.received.append({"headers": dict(self.headers.items()), "event": json.loads(body)})
                self.send_response(topic.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def topic() -> Iterator[Topic]:
    served = Topic()
    yield served
    served.close()


def _linux(name: str, topic_url: str) -> dict[str, Any]:
    return rs_vm(
        name,
        "daily",
        snapshotMinutes=[6, 6],
        runningScheduledJob={"startedMinutesAgo": 0},
        postScript={"topic": topic_url, "gapSeconds": GAP},
    )


def _emulator(tmp_path: Path, vms: list[dict[str, Any]]) -> Iterator[Emulator]:
    return start_emulator(tmp_path, scenario(vms, far_policies(CLOCK_START)))


def _job(emulator: Emulator, vm: str) -> dict[str, Any]:
    (job,) = emulator.admin("GET", "/admin/jobs", params={"vm": vm})
    return dict(job)


def _stats(emulator: Emulator) -> dict[str, int]:
    return dict(emulator.admin("GET", "/admin/state")["stats"])


def test_the_beacon_arrives_at_the_snapshot_moment_and_the_task_completes_gap_seconds_later(
    tmp_path: Path, topic: Topic
) -> None:
    for emulator in _emulator(tmp_path, [_linux("lin1", topic.url)]):
        emulator.advance(SNAPSHOT_SECONDS - GAP - 1)
        assert topic.received == []  # not before the snapshot
        emulator.advance(1)
        assert len(topic.received) == 1
        sent = topic.received[0]
        event = sent["event"]
        assert event["type"] == "BackupChain.Beacon.SnapshotTaken"
        assert event["specversion"] == "1.0"
        assert event["source"] == vm_resource_id("lin1")
        snapshot_moment = CLOCK_START + timedelta(seconds=SNAPSHOT_SECONDS - GAP)
        assert event["time"] == snapshot_moment.isoformat().replace("+00:00", "Z")
        assert sent["headers"]["Content-Type"].startswith("application/cloudevents+json")
        scheme, token = sent["headers"]["Authorization"].split(" ", 1)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert scheme == "Bearer" and claims["aud"] == "https://eventgrid.azure.net"
        # The job still shows the snapshot running: Azure updates the task after the post-script.
        assert _job(emulator, "lin1")["tasks"]["Take Snapshot"] == "InProgress"
        emulator.advance(GAP - 1)
        assert _job(emulator, "lin1")["tasks"]["Take Snapshot"] == "InProgress"
        emulator.advance(1)
        assert _job(emulator, "lin1")["tasks"]["Take Snapshot"] == "Completed"
        assert len(topic.received) == 1  # one beacon per backup
        stats = _stats(emulator)
        assert (stats["beaconsDue"], stats["beaconsSent"], stats["beaconsLost"]) == (1, 1, 0)


def test_job_reads_before_the_beacon_are_counted_apart(tmp_path: Path, topic: Topic) -> None:
    # What a beacon cannot save (bench/chain_bench.py): reads before the post-script ran.
    for emulator in _emulator(tmp_path, [_linux("lin3", topic.url)]):
        client = emulator.client()
        job_id = _job(emulator, "lin3")["id"]
        emulator.advance(60)
        for _ in range(2):
            client.job_details.get(VAULT, RG, job_id)
        emulator.advance(SNAPSHOT_SECONDS - GAP - 60)  # the beacon is sent
        assert len(topic.received) == 1
        client.job_details.get(VAULT, RG, job_id)  # between the beacon and the task's completion
        emulator.advance(GAP)
        client.job_details.get(VAULT, RG, job_id)
        assert _job(emulator, "lin3")["reads"] == {"toSnapshot": 3, "afterSnapshot": 1, "beforeBeacon": 2}


@pytest.mark.parametrize("failure", ["401", "refused"])
def test_a_lost_beacon_does_not_hold_up_the_job(tmp_path: Path, topic: Topic, failure: str) -> None:
    topic.status = 401
    if failure == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/events"
    else:
        url = topic.url
    for emulator in _emulator(tmp_path, [_linux("lin2", url)]):
        emulator.advance(SNAPSHOT_SECONDS)
        assert _job(emulator, "lin2")["tasks"]["Take Snapshot"] == "Completed"
        assert _stats(emulator)["beaconsLost"] == 1 and _stats(emulator)["beaconsSent"] == 0
        assert len(topic.received) == (1 if failure == "401" else 0)


def test_a_vm_without_a_post_script_sends_nothing(tmp_path: Path, topic: Topic) -> None:
    plain = rs_vm("plain", "daily", snapshotMinutes=[6, 6], runningScheduledJob={"startedMinutesAgo": 0})
    for emulator in _emulator(tmp_path, [plain]):
        emulator.advance(SNAPSHOT_SECONDS)
        assert _job(emulator, "plain")["tasks"]["Take Snapshot"] == "Completed"
        assert topic.received == []
        assert _stats(emulator)["beaconsSent"] == 0


@pytest.mark.parametrize(
    ("post_script", "os", "said"),
    [
        ({"topic": "beacon"}, "Windows", "postScript needs os Linux"),
        ({"topic": " "}, "Linux", "postScript.topic"),
        ({"topic": "beacon", "gapSeconds": -1}, "Linux", "postScript.gapSeconds"),
    ],
)
def test_a_post_script_the_framework_cannot_run_is_refused(post_script: dict[str, Any], os: str, said: str) -> None:
    body = scenario([rs_vm("vm1", "daily", os=os, postScript=post_script)], far_policies(CLOCK_START))
    with pytest.raises(ScenarioError, match=said):
        parse(body)


def test_an_unknown_post_script_key_is_refused() -> None:
    body = scenario([rs_vm("vm1", "daily", postScript={"topic": "beacon", "gap": 5})], far_policies(CLOCK_START))
    with pytest.raises(ScenarioError, match=r"postScript\.gap"):
        parse(body)
