"""``./dev serve --timeline DIR`` (a real subprocess, the sample estate, clock x60): a run started
over the HTTP API is drawn to ``DIR/<chain>.<runId>.svg`` and ``.html`` once it ends, and the
picture's segments and "downstream heard" markers are the run's events and the Event Grid
emulator's own delivery record to the downstream listener. A path that is a file is refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests
from dateutil.parser import isoparse

from demo.listener import DownstreamListener
from demo.scenario import CHAIN, FAILED_ERROR, PREFIX, VMS
from demo.stack import DOWNSTREAM_LISTENER
from devhost.procs import wait_until

REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVHOST_") and k != "REQUESTS_CA_BUNDLE"}


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(REPO / "dev"), "serve", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _every_snapshot_heard(svg_file: Path) -> bool:
    svg = ET.fromstring(svg_file.read_bytes())  # whole: the picture is replaced by a rename
    rows = {g.get("data-vm"): g for g in svg.iter(f"{SVG}g") if (g.get("class") or "").startswith("vm ")}
    return all(
        any(g.get("class") == "heard" for g in rows[vm.name].iter(f"{SVG}g"))
        for vm in VMS
        if vm.role != "failsSnapshot" and vm.name in rows
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_serve_draws_a_finished_run_from_its_events_and_deliveries(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"  # created by ./dev serve
    process = _serve("--time-scale", "60", "--timeline", str(pictures))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout or []))
    reader.start()

    def text() -> str:
        return "\n".join(lines)

    try:
        wait_until(lambda: "Ctrl-C stops everything" in text() or process.poll() is not None, 90, "the banner")
        assert process.poll() is None, text()
        assert re.search(rf"run timelines\s+{re.escape(str(pictures))}/<chain>.<runId>.svg and .html", text())

        def banner(pattern: str) -> str:
            match = re.search(pattern, text(), re.MULTILINE)
            assert match, (pattern, text())
            return match.group(1)

        url, key, ca = banner(r"export URL=(\S+) "), banner(r"export URL=\S+ KEY=(\S+) "), banner(r" CA=(\S+)$")
        eg = banner(r"Event Grid emulator\s+(\S+)")
        headers = {"x-functions-key": key}
        started = requests.post(f"{url}/api/chains/{CHAIN}/runs", json={"runId": "r1"}, headers=headers, timeout=30)
        assert started.status_code == 202, started.text
        svg_file, html_file = pictures / f"{CHAIN}.r1.svg", pictures / f"{CHAIN}.r1.html"
        wait_until(lambda: svg_file.exists() and html_file.exists(), 150, "the run's pictures")
        wait_until(lambda: f"timeline: run r1 of chain {CHAIN} (completedWithFailures) drawn to" in text(), 10, "line")
        # The first drawing may show a snapshot's delivery still pending; ./dev serve redraws it until
        # none is. Compare with the emulator's record only once the picture is final.
        wait_until(lambda: _every_snapshot_heard(svg_file), 60, "a marker for every snapshot's delivery")

        listed = requests.get(f"{url}/api/chains/{CHAIN}/runs/r1/events", headers=headers, timeout=30).json()
        ids = {e["id"] for e in listed["events"]}
        topic = requests.get(f"{eg}/admin/events", params={"topic": "downstream"}, verify=ca, timeout=10).json()
        events = [r["event"] for r in topic["events"] if r["event"]["id"] in ids]
        record = requests.get(
            f"{eg}/admin/deliveries", params={"subscription": DOWNSTREAM_LISTENER}, verify=ca, timeout=10
        ).json()
        delivered = {
            d["eventIds"][0]: isoparse(d["history"][-1]["time"])
            for d in record["deliveries"]
            if d["state"] == "Delivered"
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, text()
        reader.join(timeout=10)

    def of(kind: str, name: str) -> dict[str, Any]:
        (found,) = [e for e in events if e["type"] == PREFIX + kind and str(e["subject"]).endswith("/" + name)]
        return found

    svg = ET.fromstring(svg_file.read_bytes())
    assert svg.get("data-run") == "r1" and svg.get("data-vms") == str(len(VMS))
    rows = {g.get("data-vm"): g for g in svg.iter(f"{SVG}g") if (g.get("class") or "").startswith("vm ")}
    assert set(rows) == {vm.name for vm in VMS}
    for vm in VMS:
        row = rows[vm.name]
        ends = {r.get("data-kind"): isoparse(r.get("data-end", "")) for r in row.iter(f"{SVG}rect")}
        assert ends["waiting"] == isoparse(of("BackupTriggered", vm.name)["data"]["triggeredAt"]), vm.name
        heard = [g.get("data-at", "") for g in row.iter(f"{SVG}g") if g.get("class") == "heard"]
        if vm.role == "failsSnapshot":
            assert row.get("data-error-code") == FAILED_ERROR and "transfer" not in ends and not heard
            continue
        snapshot = of("SnapshotCompleted", vm.name)
        assert ends["snapshot"] == isoparse(snapshot["data"]["snapshotCompletedAt"]), vm.name
        assert ends["transfer"] == isoparse(of("BackupCompleted", vm.name)["data"]["jobEndedAt"]), vm.name
        # The marker is the emulator's record of delivering this very event to the listener.
        assert [isoparse(h) for h in heard] == [delivered[snapshot["id"]]], vm.name
    assert "<table>" in html_file.read_text(encoding="utf-8")


def test_a_timeline_path_that_is_a_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    done = subprocess.run(
        [str(REPO / "dev"), "serve", "--timeline", str(taken)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and f"--timeline {taken}: exists and is not a directory" in done.stderr
    assert taken.read_text() == "mine" and "starting" not in done.stdout


def test_the_listener_answers_the_cloudevents_handshake_and_acknowledges_deliveries() -> None:
    listener = DownstreamListener().start()
    try:
        origin = {"WebHook-Request-Origin": "eventgrid.azure.net"}
        answer = requests.options(listener.url, headers=origin, timeout=10)
        assert answer.status_code == 200 and answer.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
        # Event Grid asks for no rate; the spec says the answer SHOULD still give one: any.
        assert answer.headers["WebHook-Allowed-Rate"] == "*"
        assert requests.options(listener.url, timeout=10).status_code == 400
        posted = requests.post(listener.url, json={"specversion": "1.0", "id": "1"}, timeout=10)
        assert posted.status_code == 200
    finally:
        listener.stop()
