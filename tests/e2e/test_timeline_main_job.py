"""``./dev run --timeline``: the real main job (``python -m demo``, a subprocess on the local stack)
draws its run to an SVG and an HTML file, and what they show is what the run published downstream:
one row per VM, each segment ending at its event's time, the failed VM marked with its error code,
and downstream hearing of each snapshot (its delivery to the subscriber) no earlier than it was
published."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from dateutil.parser import isoparse

from demo.scenario import FAILED_ERROR, PREFIX, VMS
from tests.support.main_job import REPO, run_main_job

SVG = "{http://www.w3.org/2000/svg}"


def t(text: Any) -> datetime:
    return isoparse(str(text))


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_cell = False
        self.svg: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        self.in_cell = tag == "td"
        if tag == "svg":
            self.svg.append(dict(attrs).get("data-run") or "")

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.rows[-1].append(data)


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_main_job_draws_its_run_as_svg_and_html_matching_its_events(tmp_path: Path) -> None:
    svg_file, html_file, events_file = tmp_path / "run.svg", tmp_path / "run.html", tmp_path / "events.json"
    out = run_main_job(
        "--timeline", str(svg_file), "--timeline", str(html_file), "--events-out", str(events_file), timeout=160
    )
    assert f"(6 VMs) written to {svg_file}" in out and f"(6 VMs) written to {html_file}" in out
    events = json.loads(events_file.read_text())
    run_id = events[0]["data"]["runId"]

    def of(kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            e for e in events if e["type"] == PREFIX + kind and (name is None or str(e["subject"]).endswith("/" + name))
        ]
        assert len(found) == 1, (kind, name, found)
        return found[0]

    svg = ET.fromstring(svg_file.read_bytes())
    assert svg.get("data-run") == run_id and svg.get("data-vms") == "6" and svg.get("data-left-out") == "0"
    rows = {g.get("data-vm"): g for g in svg.iter(f"{SVG}g") if (g.get("class") or "").startswith("vm ")}
    assert set(rows) == {vm.name for vm in VMS}
    upstream_at = t(of("UpstreamReceived")["data"]["receivedAt"])
    (upstream_line,) = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "upstream"]
    assert t(upstream_line.get("data-at")) == upstream_at

    for vm in VMS:
        row = rows[vm.name]
        segments = [(r.get("data-kind"), t(r.get("data-start")), t(r.get("data-end"))) for r in row.iter(f"{SVG}rect")]
        triggered = t(of("BackupTriggered", vm.name)["data"]["triggeredAt"])
        assert segments[0] == ("waiting", upstream_at, triggered), vm.name
        heard = [g for g in row.iter(f"{SVG}g") if g.get("class") == "heard"]
        if vm.role == "failsSnapshot":
            failed = of("BackupFailed", vm.name)
            assert row.get("data-outcome") == "failed" and row.get("data-error-code") == FAILED_ERROR
            assert segments[1] == ("snapshot", triggered, t(failed["time"]))
            assert len(segments) == 2 and not heard
            (mark,) = [p for p in row.iter(f"{SVG}path") if p.get("class") == "failed-mark"]
            assert t(mark.get("data-at")) == t(failed["time"])
            continue
        snapshot = of("SnapshotCompleted", vm.name)
        snapshot_at = t(snapshot["data"]["snapshotCompletedAt"])
        ended = t(of("BackupCompleted", vm.name)["data"]["jobEndedAt"])
        assert segments[1:] == [("snapshot", triggered, snapshot_at), ("transfer", snapshot_at, ended)], vm.name
        assert row.get("data-outcome") == "completed" and row.get("data-error-code") is None
        # Downstream heard when the Event Grid emulator delivered the event: not before it was published.
        (marker,) = heard
        assert t(marker.get("data-at")) >= t(snapshot["time"]) >= snapshot_at, vm.name

    cells = Cells()
    cells.feed(html_file.read_text(encoding="utf-8"))
    assert cells.svg == [run_id]
    table = {row[0]: row for row in cells.rows if row}
    assert set(table) == {vm.name for vm in VMS}
    assert table["file01"][2] == f"failed in snapshot: {FAILED_ERROR}" and table["file01"][8] == "—"
    for vm in VMS:
        if vm.role != "failsSnapshot":
            assert "not delivered" not in table[vm.name][8] and "(+" in table[vm.name][8], table[vm.name]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run.png", "run.png: the file name must end in .svg or .html"),
        ("missing/run.svg", "run.svg: directory"),
    ],
)
def test_a_bad_timeline_file_is_refused_before_anything_starts(tmp_path: Path, name: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demo", "--timeline", str(tmp_path / name)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "argument --timeline" in done.stderr and expected in done.stderr, done.stderr
    assert "starting" not in done.stdout and list(tmp_path.iterdir()) == []
