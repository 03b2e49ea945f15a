"""Keeping orchestration custom status bounded: Azure fails an orchestration whose custom status
JSON is over 16 KB of UTF-16 (about 8,000 characters), and upstream systems send what they like."""

from __future__ import annotations

import json
from typing import Any

DETAIL_UNITS = 1024  # UTF-16 code units of upstream detail (as JSON) shown in custom status
PREVIEW_UNITS = 512  # of a larger detail, this much is shown, marked as truncated
EVENT_ID_UNITS = 1024  # longer upstream event ids are cut (and marked); dedupe cannot match those


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def utf16_prefix(text: str, units: int) -> str:
    """The longest prefix of ``text`` within ``units`` UTF-16 code units (no pair split)."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text


def upstream_for_status(upstream: dict[str, Any]) -> dict[str, Any]:
    """The upstream signal as the run's custom status shows it: ``status``, ``eventId`` (the
    upstream trigger's dedupe reads it) and ``receivedAt`` as they are; ``detail`` as it is when
    small, else ``{"truncated": true, "size": <UTF-8 bytes of its JSON>, "preview": <JSON prefix>}``.
    The whole detail is published in UpstreamReceived (or ChainSkipped)."""
    shown: dict[str, Any] = {k: upstream.get(k) for k in ("status", "eventId", "receivedAt")}
    for key in ("status", "receivedAt", "eventId"):
        value = shown[key]
        if isinstance(value, str) and utf16_units(value) > EVENT_ID_UNITS:
            shown[key] = {"truncated": True, "preview": utf16_prefix(value, PREVIEW_UNITS)}
    detail = upstream.get("detail")
    text = compact_json(detail)
    if utf16_units(text) <= DETAIL_UNITS:
        return {**shown, "detail": detail}
    preview = utf16_prefix(text, PREVIEW_UNITS)
    return {**shown, "detail": {"truncated": True, "size": len(text.encode("utf-8")), "preview": preview}}


# Event Grid refuses JSON nested deeper than its reader allows (.NET's default 64; see
# docs/azure-fidelity.md); an event's envelope and data add a few levels to the detail's own.
MAX_EVENT_DETAIL_DEPTH = 32


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, ``[]`` is 1); iterative, so any depth."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def upstream_detail_for_event(detail: Any) -> Any:
    """The upstream detail as events carry it: as it is, unless it nests deeper than
    MAX_EVENT_DETAIL_DEPTH — then ``{"truncated": true, "depth": N, "preview": <JSON prefix>}`` so
    the topic accepts the event; the whole detail stays in the run's output."""
    depth = json_depth(detail)
    if depth <= MAX_EVENT_DETAIL_DEPTH:
        return detail
    return {"truncated": True, "depth": depth, "preview": utf16_prefix(compact_json(detail), PREVIEW_UNITS)}


FAILURE_TEXT_UNITS = 2048  # of Azure's message, and of its recommendations together, in a VM's status
CUT_MARK = " …(cut; the whole text is in BackupFailed)"


def failure_for_status(message: str | None, recommendations: list[str]) -> dict[str, Any]:
    """A failed VM's Azure message and recommendations as its custom status keeps them: as they
    are, unless long — then cut (and marked) so the status stays far below Azure's limit."""

    def cut(text: str, units: int) -> str:
        return text if utf16_units(text) <= units else utf16_prefix(text, units) + CUT_MARK

    kept, left = [], FAILURE_TEXT_UNITS
    for advice in recommendations:
        if left <= 0:
            break
        kept.append(cut(advice, left))
        left -= utf16_units(advice)
    return {"message": None if message is None else cut(message, FAILURE_TEXT_UNITS), "recommendations": kept}
