"""Deterministic orchestration instance ids (DESIGN.md "Orchestration rules"), so that duplicate
upstream deliveries land on the same instance and change nothing."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def chain_instance_id(chain: str, run_id: str) -> str:
    return f"chain:{chain.lower()}:{run_id}"


def chain_prefix(chain: str) -> str:
    return f"chain:{chain.lower()}:"


def resource_hash(resource_id: str) -> str:
    """A short, case-insensitive key for an Azure resource id (ids are case-insensitive)."""
    return hashlib.sha256(resource_id.lower().encode()).hexdigest()[:16]


def vm_hash(vm_id: str) -> str:
    return resource_hash(vm_id)


def poller_instance_id(vault_id: str) -> str:
    """The vault's job poller (a singleton per vault)."""
    return f"poller:{resource_hash(vault_id)}"


def vm_instance_id(run_id: str, chain: str, vm_id: str) -> str:
    # The chain name keeps runs of two chains with the same run id (e.g. one window) apart.
    return f"vm:{chain.lower()}:{run_id}:{vm_hash(vm_id)}"


def valid_run_id(run_id: str) -> bool:
    # fullmatch: ``$`` would also accept a trailing newline, which the API's body pattern rejects.
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def run_id_for_event(event_id: str) -> str:
    """A run started by an upstream event is named after the event (Event Grid redelivers with the
    same id), so a redelivery starts nothing new."""
    return "ev-" + hashlib.sha256(event_id.encode()).hexdigest()[:24]


def run_id_for_window(when: datetime) -> str:
    return "w-" + when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
