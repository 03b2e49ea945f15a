"""The daily on-demand limit check: window firings in any 24 hours, summed per VM over its chains."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backup_chain.config import Chain
from backup_chain.daily_limit import FIRINGS_CAP, OverLimit, max_firings_per_day, over_limit
from tests.support.resource_ids import vault, vm

START = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)  # a pinned Monday: the check takes time as input
UPSTREAM = {"eventType": "Contoso.Etl.JobFinished", "subject": "/jobs/etl", "timeout": "PT1H"}


def _chain(name: str, window: str | None, vms: list[str]) -> Chain:
    body = {
        "name": name,
        "upstream": UPSTREAM,
        "window": window,
        "targets": [{"vaultId": vault("v1"), "vms": [vm(n) for n in vms]}],
    }
    return Chain.model_validate(body)


@pytest.mark.parametrize(
    ("window", "firings"),
    [
        ("0 0 1 * * *", 1),  # daily
        ("0 0 * * * *", 24),  # hourly
        ("0 30 22,23 * * *", 2),
        ("0 0 23 * * *", 1),
        ("0 0 23,1 * * *", 2),  # 23:00 and the next day's 01:00 fall in one 24 h
        ("0 0 1 1 * *", 1),  # monthly
        ("0 0 */3 * * 6", 8),  # every 3 h on Saturdays only
        ("* * * * * *", FIRINGS_CAP),
    ],
)
def test_max_firings_in_any_24_hours(window: str, firings: int) -> None:
    assert max_firings_per_day(window, START) == firings


def test_a_vm_over_the_limit_across_chains_is_named_with_each_chain() -> None:
    chains = [
        _chain("every-3h", "0 0 */3 * * *", ["app01", "app02"]),  # 8 a day
        _chain("nightly", "0 0 1 * * *", ["app01"]),  # +1: 9, the limit itself
        _chain("noon", "0 0 12 * * *", ["app02"]),  # app02: 9 as well
        _chain("adhoc", None, ["app01"]),  # upstream-driven: no window to count
    ]
    assert over_limit(chains, START) == []
    chains.append(_chain("evening", "0 0 19 * * *", ["app01"]))
    (over,) = over_limit(chains, START)
    assert over == OverLimit(vm("app01"), (0, 1, 4), (8, 1, 1))  # every-3h, nightly, evening
    assert over.total == 10


def test_a_lower_limit_is_an_input() -> None:
    chains = [_chain("hourly", "0 0 * * * *", ["app01"])]
    assert over_limit(chains, START, limit=24) == []
    assert len(over_limit(chains, START, limit=4)) == 1
