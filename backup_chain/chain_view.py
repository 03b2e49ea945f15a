"""What ``GET /api/chains`` says about one chain's schedule: its next window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backup_chain.events import iso
from backup_chain.windows import next_window


def next_window_view(
    window: str | None, scheduler: dict[str, Any], scheduler_updated: datetime | None
) -> dict[str, Any]:
    """The chain's next window as the app's scheduler sees it, on the Durable clock (virtual on
    devhost): the opening it sleeps until, or — while a window's run is going on — the opening
    after the one it started at (its status changed to ``running`` when that window opened).
    ``nextWindow`` is None when the chain has no window or its scheduler has not started yet."""
    if window is None:
        return {"nextWindow": None, "scheduler": None}
    phase = scheduler.get("phase")
    if phase == "sleeping" and scheduler.get("nextWindow"):
        return {"nextWindow": scheduler["nextWindow"], "scheduler": phase}
    if phase == "running" and scheduler_updated is not None:
        return {"nextWindow": iso(next_window(window, scheduler_updated)), "scheduler": phase}
    return {"nextWindow": None, "scheduler": phase or "notStarted"}
