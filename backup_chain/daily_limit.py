"""Whether a configuration could trigger more on-demand backups of one VM in a day than Azure
accepts. Each firing of a chain's window starts one run, and a run backs up each of its VMs once
(conflicting POSTs aside), so a VM's on-demand backups in any 24 hours are at most the firings of
the windows of the chains that list it."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from backup_chain.config import Chain

# MicrosoftDocs/azure-docs articles/backup/backup-support-matrix-iaas.md: "The Azure Backup service
# supports up to nine on-demand backups per day, but Microsoft recommends no more than four".
ON_DEMAND_PER_DAY = 9
SCAN = timedelta(days=32)  # a month and a day: every cron's pattern (day-of-month ones too) shows
FIRINGS_CAP = 1000  # a window firing more often than this in 24 h is reported as "at least"
DAY = timedelta(days=1)


def max_firings_per_day(window: str, start: datetime) -> int:
    """The most firings of the six-field NCRONTAB ``window`` (UTC) in any 24 hours from ``start``
    on (scanning SCAN; capped at FIRINGS_CAP)."""
    times: list[datetime] = []
    fire = croniter(window, start - timedelta(seconds=1), second_at_beginning=True)
    while len(times) < FIRINGS_CAP * 2:
        moment = fire.get_next(datetime)
        if moment > start + SCAN:
            break
        times.append(moment)
    best = 0
    for index, moment in enumerate(times):
        best = max(best, bisect_left(times, moment + DAY) - index)
    return min(best, FIRINGS_CAP)


@dataclass(frozen=True)
class OverLimit:
    """A VM whose chains' windows could start more than the limit in 24 hours."""

    vm: str  # the VM id as the first chain listing it spells it
    chains: tuple[int, ...]  # indexes of the chains (as given) whose windows back it up
    firings: tuple[int, ...]  # each of those windows' most firings in 24 hours

    @property
    def total(self) -> int:
        return sum(self.firings)


def over_limit(chains: Sequence[Chain], start: datetime, limit: int = ON_DEMAND_PER_DAY) -> list[OverLimit]:
    """Every VM whose chains' windows could start more than ``limit`` backups in 24 h, by VM id."""
    per_vm: dict[str, tuple[str, list[tuple[int, int]]]] = {}  # lower-case id -> (id, sources)
    for index, chain in enumerate(chains):
        if chain.window is None:
            continue
        firings = max_firings_per_day(chain.window, start)
        for _, vm in chain.vm_ids():
            per_vm.setdefault(vm.lower(), (vm, []))[1].append((index, firings))
    found = []
    for _, (vm, sources) in sorted(per_vm.items()):
        if sum(count for _, count in sources) > limit:
            found.append(OverLimit(vm, tuple(i for i, _ in sources), tuple(count for _, count in sources)))
    return found
