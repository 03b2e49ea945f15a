"""The backend garbage collection of one protected item (docs/domain.md): once a day, only while protection
is enabled, drop instant-restore snapshots older than the policy's instant RP retention and recovery
points past their expiry."""

from __future__ import annotations

from emulators.recoveryservices.model import Item

DAY = 86400.0


def collect(item: Item, now: float, instant_rp_days: int) -> tuple[int, int]:
    """Run GC on ``item`` at ``now``; returns (snapshots collected, recovery points removed)."""
    if not item.protected:
        return (0, 0)  # no GC while protection is stopped (docs/domain.md)
    snapshots = 0
    cutoff = now - instant_rp_days * DAY
    kept = []
    removed = 0
    for rp in item.rps:
        if rp.expiry <= now:
            removed += 1
            if rp.instant_valid:
                snapshots += 1
            continue
        if rp.instant_valid and rp.time <= cutoff:
            rp.instant_valid = False
            snapshots += 1
        kept.append(rp)
    item.rps = kept
    return snapshots, removed


def next_gc_time(item: Item, after: float) -> float:
    """The next daily GC slot of ``item`` strictly after ``after``."""
    day_start = after - (after % DAY)
    candidate = day_start + item.gc_offset
    return candidate if candidate > after else candidate + DAY
