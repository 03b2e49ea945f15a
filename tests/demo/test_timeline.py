"""The run timeline's pure core: the model built from a run's events (demo/timeline.py) and its
drawing (demo/timeline_render.py), read back from the SVG with xml.etree and from the HTML with
html.parser."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest

from demo.timeline import Delivery, RunTimeline, Segment, TimelineError, VmTimeline, build_timeline
from demo.timeline_render import render, render_html, render_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2027, 1, 4, 2, 40, tzinfo=timezone.utc)
SUB = "/subscriptions/00000000-0000-0000-0000-0000000000aa"
VAULT = f"{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-east"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat().replace("+00:00", "Z")


def vm(name: str) -> str:
    return f"{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


def event(kind: str, minutes: float, vm_name: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "id": f"{kind}-{vm_name or 'chain'}",
        "type": f"BackupChain.{kind}",
        "subject": vm(vm_name) if vm_name else "/chains/c1/runs/r1",
        "time": iso(minutes),
        "data": {"chain": "c1", "runId": "r1", "vmId": vm(vm_name) if vm_name else None, "vaultId": VAULT, **data},
    }


def healthy(name: str, triggered: float, snapshot: float, ended: float) -> list[dict[str, Any]]:
    return [
        event("BackupTriggered", triggered + 0.1, name, triggeredAt=iso(triggered), adopted=False),
        event("SnapshotCompleted", snapshot + 0.2, name, snapshotCompletedAt=iso(snapshot)),
        event("BackupCompleted", ended + 0.3, name, jobEndedAt=iso(ended), jobStatus="Completed"),
    ]


def sample_run() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Delivery]]:
    events = [
        event("ChainStarted", 0),
        event("UpstreamReceived", 3, receivedAt=iso(3)),
        *healthy("web01", 4, 11, 25),
        *healthy("sql01", 14, 22, 38),  # queued behind maxParallel: a long wait
        event("BackupTriggered", 5, "file01", triggeredAt=iso(5)),
        event("BackupFailed", 12, "file01", phase="snapshot", errorCode="ExtensionFailedVssWriterInBadState"),
        event("ChainCompleted", 39),
    ]
    run = {
        "chain": "c1",
        "runId": "r1",
        "runtimeStatus": "Completed",
        "outcome": "completedWithFailures",
        "vms": [
            {"vmId": vm(n), "vaultId": VAULT, "phase": p, "runtimeStatus": "Completed"}
            for n, p in (("web01", "completed"), ("sql01", "completed"), ("file01", "failed"), ("db01", "pending"))
        ],
    }
    deliveries = {
        "SnapshotCompleted-web01": Delivery("Delivered", at(11.5)),
        "SnapshotCompleted-sql01": Delivery("Pending", None),
    }
    return run, events, deliveries


def by_name(timeline: RunTimeline) -> dict[str, VmTimeline]:
    return {v.name: v for v in timeline.vms}


def test_segments_follow_the_events_times() -> None:
    timeline = build_timeline(*sample_run())
    vms = by_name(timeline)
    assert timeline.started_at == at(0) and timeline.upstream_at == at(3) and timeline.ended_at == at(39)
    assert vms["web01"].segments == (
        Segment("waiting", at(3), at(4)),
        Segment("snapshot", at(4), at(11)),
        Segment("transfer", at(11), at(25)),
    )
    assert vms["web01"].heard == Delivery("Delivered", at(11.5))
    assert vms["web01"].snapshot_published_at == at(11.2)
    assert vms["sql01"].seconds_in("waiting") == 11 * 60
    assert vms["sql01"].heard == Delivery("Pending", None)
    assert vms["file01"].outcome == "failed" and vms["file01"].error_code == "ExtensionFailedVssWriterInBadState"
    assert [s.kind for s in vms["file01"].segments] == ["waiting", "snapshot"]
    assert vms["file01"].end == at(12) and vms["file01"].heard is None
    # Never triggered and the run is over: waiting until the run ended, reported as not started.
    assert vms["db01"].outcome == "notStarted"
    assert vms["db01"].segments == (Segment("waiting", at(3), at(39)),)


def test_a_job_adopted_before_upstream_has_no_waiting_segment_and_an_unrecorded_delivery_says_so() -> None:
    events = [
        event("ChainStarted", 0),
        event("UpstreamReceived", 3, receivedAt=iso(3)),
        event("BackupTriggered", 3.1, "web01", triggeredAt=iso(1), adopted=True),
        event("SnapshotCompleted", 6, "web01", snapshotCompletedAt=iso(6)),
    ]
    run = {"chain": "c1", "runId": "r1", "runtimeStatus": "Running", "lastUpdatedTime": iso(8)}
    (web01,) = build_timeline(run, events, {}).vms
    assert web01.outcome == "running"
    assert web01.segments == (Segment("snapshot", at(1), at(6)), Segment("transfer", at(6), at(8)))
    assert web01.heard == Delivery("notRecorded", None)


def test_a_bad_time_is_an_error_naming_the_field() -> None:
    run, events, deliveries = sample_run()
    events[2]["data"]["triggeredAt"] = "yesterday-ish"
    with pytest.raises(TimelineError, match="web01 trigger: not an ISO 8601 time"):
        build_timeline(run, events, deliveries)
    with pytest.raises(TimelineError, match="'chain' and 'runId'"):
        build_timeline({"runId": "r1"}, events, deliveries)


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text.removeprefix('<?xml version="1.0" encoding="UTF-8"?>\n'))


def rows(svg: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-vm", ""): g for g in svg.iter(f"{SVG}g") if "vm" in (g.get("class") or "").split()}


def test_svg_segments_are_ordered_left_to_right_on_the_clock() -> None:
    timeline = build_timeline(*sample_run())
    svg = parse_svg(render(timeline, ".svg"))
    assert svg.get("data-vms") == "4" and svg.get("data-left-out") == "0"
    drawn = rows(svg)
    assert list(drawn) == ["db01", "sql01", "web01", "file01"]  # longest total time first
    for name, vm_timeline in by_name(timeline).items():
        rects = [r for r in drawn[name].iter(f"{SVG}rect")]
        assert [r.get("data-kind") for r in rects] == [s.kind for s in vm_timeline.segments]
        for rect, segment in zip(rects, vm_timeline.segments, strict=True):
            assert rect.get("data-start") == segment.start.isoformat().replace("+00:00", "Z")
        xs = [(float(r.get("x", "")), float(r.get("width", ""))) for r in rects]
        for (x1, w1), (x2, _) in itertools.pairwise(xs):
            assert x1 < x2 and x1 + w1 == pytest.approx(x2, abs=0.02)  # contiguous, in time order
    # One minute is the same width in every row: web01's 7-minute snapshot vs sql01's 8.
    web_snap = next(r for r in drawn["web01"].iter(f"{SVG}rect") if r.get("data-kind") == "snapshot")
    sql_snap = next(r for r in drawn["sql01"].iter(f"{SVG}rect") if r.get("data-kind") == "snapshot")
    assert float(web_snap.get("width", "")) / 7 == pytest.approx(float(sql_snap.get("width", "")) / 8, abs=0.01)
    # The heard marker sits at its delivery time, right of the snapshot's end; a pending one is not drawn.
    (heard,) = [g for g in drawn["web01"].iter(f"{SVG}g") if g.get("class") == "heard"]
    assert heard.get("data-at") == iso(11.5)
    line = heard.find(f"{SVG}line")
    assert line is not None
    snap_end = float(web_snap.get("x", "")) + float(web_snap.get("width", ""))
    assert float(line.get("x1", "")) > snap_end
    assert not [g for g in drawn["sql01"].iter(f"{SVG}g") if g.get("class") == "heard"]
    ticks = [g.get("data-at", "") for g in svg.iter(f"{SVG}g") if g.get("class") == "tick"]
    assert ticks and ticks == sorted(ticks)
    assert [g.get("data-at") for g in svg.iter(f"{SVG}g") if g.get("class") == "upstream"] == [iso(3)]


def test_a_failed_vm_is_marked_with_its_error_code() -> None:
    svg = parse_svg(render(build_timeline(*sample_run()), ".svg"))
    drawn = rows(svg)
    failed = drawn["file01"]
    assert failed.get("class") == "vm failed" and failed.get("data-error-code") == "ExtensionFailedVssWriterInBadState"
    texts = ["".join(t.itertext()) for t in failed.iter(f"{SVG}text")]
    assert any("ExtensionFailedVssWriterInBadState" in t and "snapshot" in t for t in texts)
    marks = [p for p in failed.iter(f"{SVG}path") if p.get("class") == "failed-mark"]
    assert [m.get("data-at") for m in marks] == [iso(12)]
    for name in ("web01", "sql01", "db01"):
        assert drawn[name].get("data-error-code") is None
        assert not [p for p in drawn[name].iter(f"{SVG}path") if p.get("class") == "failed-mark"]


def many_vms(count: int, failed: set[int]) -> RunTimeline:
    vms = []
    for i in range(count):
        end = at(10 + i % 97)
        vms.append(
            VmTimeline(
                vm_id=vm(f"vm{i:04d}"),
                name=f"vm{i:04d}",
                vault="rsv-east",
                outcome="failed" if i in failed else "completed",
                segments=(Segment("waiting", at(1), at(2)), Segment("snapshot", at(2), end)),
                error_code="UserErrorGuestAgentStatusUnavailable" if i in failed else None,
                failed_at=end if i in failed else None,
            )
        )
    return RunTimeline("c1", "r1", "Completed", "completedWithFailures", at(0), at(1), at(120), tuple(vms))


def test_a_large_run_is_capped_to_the_longest_rows_and_keeps_the_failed_ones() -> None:
    timeline = many_vms(1000, failed={0, 500})  # both failed VMs are among the shortest
    svg_text = render_svg(timeline, max_rows=60)
    svg = parse_svg(svg_text)
    drawn = rows(svg)
    assert len(drawn) == 60 and svg.get("data-shown") == "60" and svg.get("data-left-out") == "940"
    assert {"vm0000", "vm0500"} <= set(drawn)
    totals = [by_name(timeline)[name].total_seconds for name in drawn]
    assert totals == sorted(totals, reverse=True)
    healthy_shown = [by_name(timeline)[n].total_seconds for n in drawn if n not in ("vm0000", "vm0500")]
    left_out = [v.total_seconds for v in timeline.vms if v.name not in drawn]
    assert min(healthy_shown) >= max(left_out)
    (note,) = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "left-out"]
    assert "940 more VM(s) not shown" in "".join(note.itertext())
    assert len(svg_text) < 120_000
    html = render_html(timeline, max_rows=60)
    assert html.count("<tr data-vm=") + html.count('<tr class="failed" data-vm=') == 60
    assert "940 more VM(s) not shown." in html


class TagBalance(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.seen: list[str] = []
        self.cells: list[list[str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        if tag == "tr":
            self.cells.append([])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "td":
            self.cells[-1].append(data)


def test_html_is_well_formed_self_contained_and_tabulates_each_vm() -> None:
    run, events, deliveries = sample_run()
    events[-2]["data"]["errorCode"] = "Bad<Code>&'\""  # Azure's text is escaped, never markup
    html = render(build_timeline(run, events, deliveries), ".html")
    parser = TagBalance()
    parser.feed(html)
    parser.close()
    assert not parser.problems and not parser.stack, (parser.problems, parser.stack)
    assert "svg" in parser.seen and "script" not in parser.seen
    assert not {"img", "link", "iframe", "object"} & set(parser.seen)
    table = {row[0]: row for row in parser.cells if row}
    assert table["web01"][2:9] == ["completed", "1m 00s", "7m 00s", "14m 00s", "22m 00s", "02:51:00", "02:51:30 (+30s)"]
    assert table["sql01"][8] == "not delivered (Pending)"
    assert table["file01"][2] == "failed in snapshot: Bad<Code>&'\""
    assert table["db01"][2] == "notStarted"
    # The inline SVG is well-formed XML too.
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    assert rows(ET.fromstring(svg))["file01"].get("data-error-code") == "Bad<Code>&'\""


def test_an_unknown_suffix_or_no_rows_is_refused() -> None:
    timeline = build_timeline(*sample_run())
    with pytest.raises(ValueError, match=re.escape("ends in .svg or .html, not '.png'")):
        render(timeline, ".png")
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        render(timeline, ".svg", max_rows=0)


def test_a_cancelled_run_shows_its_unfinished_and_never_started_vms_as_cancelled() -> None:
    """POST …/cancel stops watching running backups and skips the VMs not yet started: none of them is
    'running' once the run has ended, and the skipped ones (no VM orchestration, so not in the run's
    GET) still get a row from ChainCompleted's per-VM summary."""
    summary = [
        {"vmId": vm("web01"), "outcome": "cancelled", "jobId": "j1", "jobRunning": True},
        {"vmId": vm("sql01"), "outcome": "cancelled", "jobId": None},
    ]
    events = [
        event("ChainStarted", 0),
        event("BackupTriggered", 2, "web01", triggeredAt=iso(2)),
        event("ChainCompleted", 9, outcome="cancelled", vms=summary, vmsListed="all"),
    ]
    run = {
        "chain": "c1",
        "runId": "r1",
        "runtimeStatus": "Completed",
        "outcome": "cancelled",
        "vms": [{"vmId": vm("web01"), "vaultId": VAULT, "phase": "snapshot", "runtimeStatus": "Terminated"}],
    }
    vms = by_name(build_timeline(run, events, {}))
    assert set(vms) == {"web01", "sql01"}
    assert vms["web01"].outcome == "cancelled" and vms["web01"].segments[-1] == Segment("snapshot", at(2), at(9))
    assert vms["sql01"].outcome == "cancelled" and vms["sql01"].segments == (Segment("waiting", at(0), at(9)),)
    svg = ET.fromstring(render_svg(build_timeline(run, events, {})))
    statuses = {t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "status"}
    assert statuses == {"cancelled"}


def test_a_vm_still_backing_up_when_the_run_was_terminated_is_unfinished_not_running() -> None:
    events = [event("ChainStarted", 0), event("BackupTriggered", 2, "web01", triggeredAt=iso(2))]
    run = {"chain": "c1", "runId": "r1", "runtimeStatus": "Terminated", "lastUpdatedTime": iso(7)}
    (web01,) = build_timeline(run, events, {}).vms
    assert web01.outcome == "unfinished" and web01.end == at(7)


def test_a_vm_whose_orchestration_failed_is_failed_with_the_code_chain_completed_gives() -> None:
    """No BackupFailed event (the VM's own orchestration failed): ChainCompleted's summary says
    failed, OrchestrationFailed; the row must not read as unfinished."""
    summary = [{"vmId": vm("web01"), "outcome": "failed", "failedPhase": None, "errorCode": "OrchestrationFailed"}]
    events = [
        event("ChainStarted", 0),
        event("BackupTriggered", 2, "web01", triggeredAt=iso(2)),
        event("ChainCompleted", 9, outcome="completedWithFailures", vms=summary, vmsListed="all"),
    ]
    run = {
        "chain": "c1",
        "runId": "r1",
        "runtimeStatus": "Completed",
        "vms": [{"vmId": vm("web01"), "phase": "snapshot", "runtimeStatus": "Failed", "updatedAt": iso(4)}],
    }
    (web01,) = build_timeline(run, events, {}).vms
    assert (web01.outcome, web01.error_code, web01.failed_at) == ("failed", "OrchestrationFailed", at(4))


def test_a_run_spanning_weeks_keeps_its_axis_to_a_readable_number_of_ticks() -> None:
    events = [event("ChainStarted", 0), event("BackupTriggered", 1, "web01", triggeredAt=iso(1))]
    run = {"chain": "c1", "runId": "r1", "runtimeStatus": "Running", "lastUpdatedTime": iso(60 * 24 * 60)}
    svg = parse_svg(render_svg(build_timeline(run, events, {})))
    ticks = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "tick"]
    assert 2 <= len(ticks) <= 11, len(ticks)
