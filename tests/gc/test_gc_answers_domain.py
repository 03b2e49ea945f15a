"""Every Azure answer about GC checked, the pure core: a refused resume/stop leaves the lease matching real
protection, only GC-covered VMs get GC settings, overlap with the scheduled backup is refused or
delayed per config, and retry exhaustion names Azure's code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from backup_chain.config import ConfigError, parse_config
from backup_chain.errors import retries_exhausted
from backup_chain.gc import SCHEDULE_START_SLACK, Lease, PolicySchedule, lease_apply, overlap_decision
from backup_chain.runs import gc_for_vm, gc_settings
from demo.stack import vault_id, vm_id

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)
WEDNESDAY_2 = datetime(2027, 1, 6, 2, 0, tzinfo=timezone.utc)  # the weekly policy's scheduled backup
WEEKLY = PolicySchedule("Weekly", ("Wednesday",), ("02:00",), "UTC")


def _config(gc: dict[str, Any]) -> Any:
    return parse_config(
        {
            "chains": [{"name": "c", "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("a"), vm_id("b")]}]}],
            "gc": gc,
        }
    )


def test_a_refused_resume_frees_the_lease_protection_is_still_off() -> None:
    lease = Lease()
    assert lease_apply(lease, "acquire", {"holder": "w"})["action"] == "resume"
    assert lease_apply(lease, "resumeFailed", {"holder": "w"}) == {"action": "ok", "phase": "off"}
    assert lease.to_state() == {"phase": "off", "holders": {}, "transitionBy": None}
    # the next holder tries the resume again, instead of being told protection is on
    assert lease_apply(lease, "acquire", {"holder": "b"})["action"] == "resume"


def test_a_refused_stop_keeps_the_lease_on_as_protection_is() -> None:
    lease = Lease()
    lease_apply(lease, "acquire", {"holder": "w"})
    lease_apply(lease, "started", {"holder": "w"})
    assert lease_apply(lease, "release", {"holder": "w"})["action"] == "stop"
    assert lease_apply(lease, "stopFailed", {"holder": "w"})["phase"] == "on"
    assert lease.holders == {} and lease.transition_by is None
    assert lease_apply(lease, "acquire", {"holder": "b"})["action"] == "granted"
    # someone else's failure report does not touch a transition it does not own
    lease_apply(lease, "release", {"holder": "b"})
    assert lease_apply(lease, "resumeFailed", {"holder": "x"})["phase"] == "stopping"


def test_gc_settings_only_for_vms_gc_covers() -> None:
    config = _config({"mode": "weekend-window", "policy": "weekly", "vms": [vm_id("a")]})
    chain = config.chains[0]
    settings = gc_settings(config, chain)
    covered = gc_for_vm(settings, vm_id("a"))
    assert covered is not None and covered["mode"] == "weekend-window" and covered["overlap"] == "refuse"
    assert gc_for_vm(settings, vm_id("b")) is None  # a chain never changes protection of this VM
    everyone = _config({"mode": "weekend-window", "policy": "weekly"})
    assert gc_for_vm(gc_settings(everyone, everyone.chains[0]), vm_id("b")) is not None
    assert gc_settings(parse_config({"chains": [chain.model_dump(mode="json")]}), chain) is None


def test_weekly_policy_mode_now_gets_settings_too() -> None:
    config = _config({"mode": "weekly-policy", "overlap": "delay"})
    settings = gc_for_vm(gc_settings(config, config.chains[0]), vm_id("a"))
    assert settings == {"mode": "weekly-policy", "policy": None, "overlap": "delay"}


def test_overlap_must_be_refuse_or_delay_and_the_error_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        _config({"mode": "weekly-policy", "overlap": "ignore"})
    assert "gc.overlap" in str(err.value) and "'refuse'" in str(err.value)


def test_overlap_decision_refuses_or_delays_until_clear() -> None:
    start = WEDNESDAY_2 - timedelta(minutes=30)
    assert overlap_decision(WEEKLY, MONDAY, timedelta(hours=3), "refuse") is None
    refused = overlap_decision(WEEKLY, start, timedelta(hours=3), "refuse")
    assert refused is not None and refused["action"] == "refuse" and refused["scheduledAt"] == WEDNESDAY_2
    delayed = overlap_decision(WEEKLY, start, timedelta(hours=3), "delay")
    assert delayed is not None and delayed["clearAt"] == WEDNESDAY_2 + SCHEDULE_START_SLACK
    assert WEEKLY.collides(delayed["clearAt"], timedelta(hours=3)) is None
    # started inside the slack after the scheduled time: wait the rest of it
    inside = WEDNESDAY_2 + timedelta(minutes=90)
    assert WEEKLY.clear_at(inside, timedelta(hours=3)) == WEDNESDAY_2 + SCHEDULE_START_SLACK


def test_clear_at_steps_over_back_to_back_daily_runs() -> None:
    daily = PolicySchedule("Daily", (), ("02:00", "04:00"), "UTC")
    start = datetime(2027, 1, 4, 1, 0, tzinfo=timezone.utc)
    clear = daily.clear_at(start, timedelta(hours=3))
    assert clear == datetime(2027, 1, 4, 6, 0, tzinfo=timezone.utc)
    assert daily.collides(clear, timedelta(hours=3)) is None


def test_retries_exhausted_names_azures_code() -> None:
    text = (
        "TransientAzureError: ServiceUnavailable: The service is temporarily unavailable. Please retry the request."
        " \n {...traceback...}"
    )
    error = retries_exhausted(text)
    assert error["code"] == "ServiceUnavailable"
    assert "temporarily unavailable" in error["message"] and "traceback" not in error["message"]
    assert retries_exhausted("something else broke")["code"] == "RetriesExhausted"
