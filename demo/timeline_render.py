"""Draws a ``RunTimeline`` (``demo/timeline.py``) as an SVG, or as a self-contained HTML page (the
SVG inline plus a table; no external assets, no JavaScript). Pure: text in, text out.

One row per VM (at most ``max_rows``: the longest first, failed VMs kept; a line says how many were
left out) with its waiting / snapshot / transfer segments on the run's virtual clock, a marker where
downstream heard of the snapshot (the SnapshotCompleted event's delivery to the subscriber), failed
VMs in red with their error code, a time axis and a legend. Every drawn element carries ``data-*``
attributes with its ISO times, so a test or a script can read the picture back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape

from demo.timeline import RunTimeline, Segment, VmTimeline

MAX_ROWS = 60
WIDTH = 1100
LABEL_WIDTH = 230
RIGHT_MARGIN = 250  # room for the error code or outcome after the last segment
ROW_HEIGHT = 22
BAR_HEIGHT = 14
TOP = 92  # title line and the two legend lines
TICK_STEPS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_TICKS = 10
COLOURS = {"waiting": "#c8ccd2", "snapshot": "#f0a202", "transfer": "#2b7bd6"}
HEARD_COLOUR = "#1a9e48"
FAILED_COLOUR = "#d12a2a"
SUFFIXES = (".svg", ".html")


def duration(seconds: float) -> str:
    """``1h 02m``, ``7m 05s`` or ``42s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


class _Scale:
    def __init__(self, first: datetime, last: datetime) -> None:
        self.first = first
        self.span = max((last - first).total_seconds(), 1.0)
        self.x0 = LABEL_WIDTH
        self.width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN

    def x(self, moment: datetime) -> float:
        return round(self.x0 + (moment - self.first).total_seconds() / self.span * self.width, 2)

    def ticks(self) -> tuple[int, list[datetime]]:
        # Past the listed steps (a run left running for weeks): whole days, still at most MAX_TICKS.
        days = 86400 * math.ceil(self.span / MAX_TICKS / 86400)
        step = next((s for s in TICK_STEPS if self.span / s <= MAX_TICKS), days)
        epoch = self.first.timestamp()
        start = self.first + timedelta(seconds=(-epoch) % step)
        count = int((self.span - (start - self.first).total_seconds()) // step) + 1
        return step, [start + timedelta(seconds=i * step) for i in range(count)]


def _segment(scale: _Scale, vm: VmTimeline, segment: Segment, y: float) -> str:
    x, end = scale.x(segment.start), scale.x(segment.end)
    title = f"{vm.name} {segment.kind}: {segment.start:%H:%M:%S} → {segment.end:%H:%M:%S} ({duration(segment.seconds)})"
    return (
        f'<rect class="segment {segment.kind}" data-vm="{_attr(vm.name)}" data-kind="{segment.kind}" '
        f'data-start="{_iso(segment.start)}" data-end="{_iso(segment.end)}" x="{x}" y="{y}" '
        f'width="{max(round(end - x, 2), 0.5)}" height="{BAR_HEIGHT}" fill="{COLOURS[segment.kind]}">'
        f"<title>{escape(title)}</title></rect>"
    )


def _heard(scale: _Scale, vm: VmTimeline, y: float) -> str:
    heard = vm.heard
    if heard is None or heard.delivered_at is None:
        return ""
    x = scale.x(heard.delivered_at)
    lag = ""
    if vm.snapshot_completed_at is not None:
        lag = f", {duration((heard.delivered_at - vm.snapshot_completed_at).total_seconds())} after the snapshot"
    title = f"{vm.name}: downstream heard of the snapshot at {heard.delivered_at:%H:%M:%S}{lag}"
    top, bottom = y - 3, y + BAR_HEIGHT + 3
    return (
        f'<g class="heard" data-vm="{_attr(vm.name)}" data-at="{_iso(heard.delivered_at)}">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="{HEARD_COLOUR}" stroke-width="2"/>'
        f'<path d="M{x - 5},{top - 5} L{x + 5},{top - 5} L{x},{top + 1} Z" fill="{HEARD_COLOUR}"/></g>'
    )


def _status_text(vm: VmTimeline) -> str:
    if vm.outcome == "failed":
        return f"{vm.error_code or 'failed'} (in {vm.failed_phase or 'unknown phase'})"
    if vm.outcome == "completed":
        return duration(vm.total_seconds)
    if vm.outcome == "notStarted":
        return "not started"
    if vm.outcome == "cancelled":
        return "cancelled"
    if vm.outcome == "unfinished":
        return "unfinished (the run ended first)"
    return f"{vm.outcome} …"


def _row(scale: _Scale, vm: VmTimeline, index: int) -> str:
    y = TOP + index * ROW_HEIGHT
    bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2
    failed = vm.outcome == "failed"
    label_fill = f' fill="{FAILED_COLOUR}"' if failed else ""
    parts = [
        f'<g class="vm {vm.outcome}" data-vm="{_attr(vm.name)}" data-outcome="{vm.outcome}"'
        + (f' data-error-code="{_attr(vm.error_code)}"' if vm.error_code else "")
        + ">",
        f'<text x="8" y="{bar_y + 11}" class="label"{label_fill}>'
        f'{escape(vm.name)} <tspan class="vault">{escape(vm.vault)}</tspan></text>',
    ]
    parts += [_segment(scale, vm, s, bar_y) for s in vm.segments]
    end_x = scale.x(vm.end) if vm.end is not None else scale.x0
    if failed and vm.failed_at is not None:
        fx, cy = scale.x(vm.failed_at), bar_y + BAR_HEIGHT / 2
        parts.append(
            f'<path class="failed-mark" data-at="{_iso(vm.failed_at)}" '
            f'd="M{fx - 5},{cy - 5} L{fx + 5},{cy + 5} M{fx - 5},{cy + 5} L{fx + 5},{cy - 5}" '
            f'stroke="{FAILED_COLOUR}" stroke-width="2.5"/>'
        )
    colour = FAILED_COLOUR if failed else "#333"
    parts.append(
        f'<text class="status" x="{end_x + 9}" y="{bar_y + 11}" fill="{colour}">{escape(_status_text(vm))}</text>'
    )
    parts.append(_heard(scale, vm, bar_y))
    parts.append("</g>")
    return "".join(parts)


def _marker(scale: _Scale, moment: datetime, label: str, css: str, bottom: float) -> str:
    x = scale.x(moment)
    return (
        f'<g class="{css}" data-at="{_iso(moment)}"><line x1="{x}" y1="{TOP - 6}" x2="{x}" y2="{bottom}" '
        f'stroke="#666" stroke-dasharray="4 3"/>'
        f'<text x="{x + 3}" y="{TOP - 9}" class="small">{escape(label)}</text></g>'
    )


def _legend(y: float) -> str:
    """Two lines: the segments, then the markers."""
    items = []
    x = 8.0
    for kind, text in (
        ("waiting", "waiting: upstream received (or run start) → triggered, queueing included"),
        ("snapshot", "snapshot: → Take Snapshot completed"),
        ("transfer", "transfer: → backup completed"),
    ):
        items.append(f'<rect x="{x}" y="{y - 10}" width="14" height="10" fill="{COLOURS[kind]}"/>')
        items.append(f'<text x="{x + 18}" y="{y}" class="small">{escape(text)}</text>')
        x += 18 + 6 * len(text) + 14
    low, x = y + 16, 8.0
    items.append(f'<path d="M{x},{low - 10} L{x + 10},{low - 10} L{x + 5},{low - 4} Z" fill="{HEARD_COLOUR}"/>')
    for text, fill in (
        ("downstream heard: SnapshotCompleted delivered to the subscriber", "#444"),
        ("✕ failed, with its error code", FAILED_COLOUR),
        ("dashed: run start, upstream received", "#444"),
    ):
        items.append(f'<text x="{x + 16}" y="{low}" class="small" style="fill:{fill}">{escape(text)}</text>')
        x += 16 + 6 * len(text) + 14
    return f'<g class="legend">{"".join(items)}</g>'


def render_svg(timeline: RunTimeline, max_rows: int = MAX_ROWS) -> str:
    shown, left_out = timeline.rows(max_rows)
    scale = _Scale(timeline.first(), timeline.last())
    rows_bottom = TOP + len(shown) * ROW_HEIGHT
    axis_y = rows_bottom + 8 + (ROW_HEIGHT if left_out else 0)
    height = axis_y + 40
    status = timeline.outcome or timeline.runtime_status or "running"
    title = (
        f"chain {timeline.chain} run {timeline.run_id}: {status}; {len(timeline.vms)} VMs; "
        f"{timeline.started_at:%Y-%m-%d %H:%M:%S} → {timeline.ended_at:%H:%M:%S} UTC (virtual clock)"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" class="run-timeline" '
        f'data-chain="{_attr(timeline.chain)}" data-run="{_attr(timeline.run_id)}" '
        f'data-vms="{len(timeline.vms)}" data-shown="{len(shown)}" data-left-out="{left_out}">',
        "<style>.small{font-size:11px;fill:#444}.vault{font-size:10px;fill:#777}.label{font-size:12px}</style>",
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
        _legend(38),
    ]
    step, ticks = scale.ticks()
    for tick in ticks:
        x = scale.x(tick)
        label = f"{tick:%d %b}" if step >= 86400 else f"{tick:%H:%M}" if step >= 60 else f"{tick:%H:%M:%S}"
        parts.append(
            f'<g class="tick" data-at="{_iso(tick)}"><line x1="{x}" y1="{TOP}" x2="{x}" y2="{axis_y}" stroke="#eee"/>'
            f'<text x="{x}" y="{axis_y + 16}" text-anchor="middle" class="small">{label}</text></g>'
        )
    parts.append(
        f'<line class="axis" x1="{scale.x0}" y1="{axis_y}" x2="{scale.x0 + scale.width}" y2="{axis_y}" stroke="#444"/>'
        f'<text x="{scale.x0}" y="{axis_y + 32}" class="small">virtual clock, UTC (ticks every {duration(step)})</text>'
    )
    parts.append(_marker(scale, timeline.started_at, "run start", "run-start", axis_y))
    if timeline.upstream_at is not None:
        parts.append(_marker(scale, timeline.upstream_at, "upstream received", "upstream", axis_y))
    parts += [_row(scale, vm, i) for i, vm in enumerate(shown)]
    if left_out:
        parts.append(
            f'<text class="left-out" x="8" y="{rows_bottom + 15}">… {left_out} more VM(s) not shown: '
            f"the {len(shown)} rows are the longest (failed VMs first to be kept)</text>"
        )
    parts.append("</svg>")
    return "\n".join(p for p in parts if p)


def _heard_cell(vm: VmTimeline) -> str:
    heard = vm.heard
    if heard is None:
        return "—"
    if heard.delivered_at is None:
        return f"not delivered ({heard.state})"
    lag = ""
    if vm.snapshot_completed_at is not None:
        lag = f" (+{duration((heard.delivered_at - vm.snapshot_completed_at).total_seconds())})"
    return f"{heard.delivered_at:%H:%M:%S}{lag}"


def render_html(timeline: RunTimeline, max_rows: int = MAX_ROWS) -> str:
    shown, left_out = timeline.rows(max_rows)
    head = ["VM", "vault", "outcome", "waiting", "snapshot", "transfer", "total", "snapshot done", "downstream heard"]
    rows = []
    for vm in shown:
        outcome = vm.outcome if vm.outcome != "failed" else f"failed in {vm.failed_phase}: {vm.error_code}"
        if vm.note:
            outcome += f"; {vm.note}"
        cells = [
            vm.name,
            vm.vault,
            outcome,
            duration(vm.seconds_in("waiting")),
            duration(vm.seconds_in("snapshot")),
            duration(vm.seconds_in("transfer")),
            duration(vm.total_seconds),
            f"{vm.snapshot_completed_at:%H:%M:%S}" if vm.snapshot_completed_at else "—",
            _heard_cell(vm),
        ]
        css = ' class="failed"' if vm.outcome == "failed" else ""
        rows.append(f'<tr{css} data-vm="{_attr(vm.name)}">' + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    more = f"<p>{left_out} more VM(s) not shown.</p>" if left_out else ""
    title = f"chain {timeline.chain} run {timeline.run_id}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}: timeline</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
tr.failed td {{ color: {FAILED_COLOUR}; }}
</style>
</head>
<body>
<h1>{escape(title)}</h1>
{render_svg(timeline, max_rows)}
<table>
<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
{more}
</body>
</html>
"""


def render(timeline: RunTimeline, suffix: str, max_rows: int = MAX_ROWS) -> str:
    """The picture for a file name ending in ``suffix`` (``.svg`` or ``.html``)."""
    if suffix == ".svg":
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + render_svg(timeline, max_rows) + "\n"
    if suffix == ".html":
        return render_html(timeline, max_rows)
    raise ValueError(f"a timeline file ends in .svg or .html, not {suffix!r}")
