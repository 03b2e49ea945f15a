"""Restore point consistency from OS, power state, agent and Linux pre/post scripts (the table in
docs/domain.md)."""

from __future__ import annotations

import random

from emulators.recoveryservices.scenario import VmSpec

_STOPPED = ("stopped", "deallocated", "stopped (deallocated)")


def consistency_type(vm: VmSpec, rng: random.Random) -> str:
    if vm.power_state in _STOPPED:
        return "CrashConsistent"  # VM stopped/deallocated
    if vm.agent_status.lower() in ("unavailable", "failed", "notready"):
        return "CrashConsistent"  # agent provisioning state unavailable/failed -> fallback
    if vm.os == "Windows":
        # VSS with all writers succeeding is the default; some writers failing -> file-system
        if vm.faults.vss_writer_failure_rate and rng.random() < vm.faults.vss_writer_failure_rate:
            return "FileSystemConsistent"
        return "AppConsistent"
    # Linux: application-consistent only with pre/post scripts configured (and succeeding)
    return "AppConsistent" if vm.pre_scripts else "FileSystemConsistent"
