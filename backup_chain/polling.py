"""When to look at a running backup job next — a pure function of how long it has run.

Take Snapshot usually takes 5–15 minutes (docs/domain.md), so nothing is polled before the shortest
plausible snapshot time, polling is dense across the chain's expected snapshot window (that is
where the downstream lag is decided), and sparse and backing off once the snapshot is overdue.
Transfer data to vault takes hours (usually 1–3, up to 8+), so it is watched sparsely."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# A chain whose VMs send snapshot beacons (docs/beacon.md) polls its snapshot window this sparsely:
# the beacon makes the reads dense; this is only the fallback for a lost beacon (a mean lag of
# half of it), at a twelfth of the reads of the default 5 s.
BEACON_FALLBACK_SECONDS = 60.0
DENSE_SECONDS = 5.0  # a snapshot window's read spacing without beacons


@dataclass(frozen=True)
class PollPlan:
    snapshot_low_s: float = 5 * 60
    snapshot_high_s: float = 15 * 60
    dense_s: float = DENSE_SECONDS  # mean lag ~ dense_s / 2 inside the expected window
    lead_s: float = 30.0  # start dense polling this much before the window
    overdue_min_s: float = 60.0
    overdue_max_s: float = 300.0
    transfer_first_s: float = 600.0
    transfer_max_s: float = 1800.0
    quiet_until_s: float = 0.0  # no snapshot read before this (a beacon is expected to cover it)

    @property
    def beacons(self) -> bool:
        """A beacon chain's plan (``for_chain``): read at the lost-beacon fallback's spacing. Not
        a field, so plans stored in histories and entity state keep the fields older code reads."""
        return self.dense_s >= BEACON_FALLBACK_SECONDS

    def to_dict(self) -> dict[str, float]:
        """As stored in orchestration inputs and the board: a field at its default is left out when
        older code would not know it (a rollback must still read plans written by this one)."""
        body = dict(self.__dict__)
        if not body["quiet_until_s"]:
            del body["quiet_until_s"]
        return body

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PollPlan:
        """A stored plan; fields a newer version added and this one does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in raw.items() if k in known})

    @classmethod
    def for_minutes(cls, low: float, high: float, dense_s: float = DENSE_SECONDS) -> PollPlan:
        return cls(snapshot_low_s=low * 60, snapshot_high_s=high * 60, dense_s=dense_s)

    @classmethod
    def for_chain(cls, low: float, high: float, beacons: bool) -> PollPlan:
        return cls.for_minutes(low, high, BEACON_FALLBACK_SECONDS) if beacons else cls.for_minutes(low, high)

    def dense_between(self, low_s: float, high_s: float) -> PollPlan:
        """This plan with its dense snapshot window moved to ``[low_s, high_s]`` (a VM's learned
        snapshot durations, ``backup_chain.snapshot_history``)."""
        return replace(self, snapshot_low_s=low_s, snapshot_high_s=high_s)

    def quiet_until(self, seconds: float) -> PollPlan:
        """This plan with no snapshot read before ``seconds`` after the job started."""
        return replace(self, quiet_until_s=seconds)

    def snapshot_delay(self, elapsed_s: float) -> float:
        """Seconds to wait before the next job read, ``elapsed_s`` after the job started."""
        elapsed = max(0.0, elapsed_s)
        dense_from = max(0.0, self.snapshot_low_s - self.lead_s, self.quiet_until_s)
        dense_until = max(dense_from, self.snapshot_high_s + self.lead_s)
        if elapsed < dense_from:
            return dense_from - elapsed
        if elapsed < dense_until:
            return self.dense_s
        overdue = elapsed - dense_until
        return min(self.overdue_max_s, max(self.overdue_min_s, overdue / 4))

    def transfer_delay(self, elapsed_s: float) -> float:
        """Seconds to wait before the next read, ``elapsed_s`` after the snapshot completed."""
        return min(self.transfer_max_s, max(self.transfer_first_s, max(0.0, elapsed_s) / 3))

    def waiting_delay(self, elapsed_s: float) -> float:
        """Waiting out someone else's job (e.g. a scheduled backup) before triggering our own."""
        return min(self.transfer_max_s, max(self.overdue_min_s, max(0.0, elapsed_s) / 4))

    def delay(self, until: str, elapsed_s: float) -> float:
        """The next read for a watch ``until`` ``snapshot`` | ``transfer`` | ``end``, ``elapsed_s``
        after the watched phase began."""
        if until == "snapshot":
            return self.snapshot_delay(elapsed_s)
        if until == "transfer":
            return self.transfer_delay(elapsed_s)
        return self.waiting_delay(elapsed_s)
