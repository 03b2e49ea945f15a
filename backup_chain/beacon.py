"""Snapshot beacons (docs/beacon.md): the CloudEvent a Linux VM's post-script sends right after
its backup snapshot. A beacon is a hint, never truth: it only makes the vault's poller read the
VM's job sooner; SnapshotCompleted still comes from the job's own state.

Pure: ``parse_beacon`` checks an event's fields (the bad one is named) and ``hint_vaults`` says
which vaults' boards may be watching the VM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from backup_chain.config import ChainConfig
from backup_chain.resource_ids import ResourceIdError, VaultId, VmId

BEACON_EVENT_TYPE = "BackupChain.Beacon.SnapshotTaken"
MAX_BEACON_BYTES = 4 * 1024  # the post-script sends ~300 bytes and no data
MAX_ID_CHARS = 128
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


class BeaconInvalid(ValueError):
    """A beacon that is not one; ``field`` names the CloudEvent attribute at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"beacon {field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class Beacon:
    event_id: str
    vm_id: str  # as VmId.id spells it (subscription in lower case)
    time: datetime

    @property
    def at(self) -> float:
        """The beacon's time as epoch seconds (the board's unit)."""
        return self.time.timestamp()


def _time(raw: object) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BeaconInvalid("time", f"{raw[:64]!r} is not an RFC 3339 time") from None
    else:
        raise BeaconInvalid("time", "missing")
    if value.tzinfo is None:  # read as UTC, as Event Grid writes its times
        value = value.replace(tzinfo=timezone.utc)
    if value < EARLIEST:
        raise BeaconInvalid("time", f"{value.isoformat()} is before {EARLIEST.year}")
    return value


def parse_beacon(event_id: object, event_type: object, source: object, time: object, size: int | None) -> Beacon:
    """The beacon an Event Grid delivery carries, or BeaconInvalid naming the first bad field.
    ``size``: the event's data as JSON bytes (None: unreadable); a beacon carries (almost) none.
    Whether ``time`` is plausible *now* is judged by the board, on the Durable clock."""
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_ID_CHARS:
        raise BeaconInvalid("id", f"must be a string of 1-{MAX_ID_CHARS} characters")
    if event_type != BEACON_EVENT_TYPE:
        raise BeaconInvalid("type", f"{str(event_type)[:64]!r} is not {BEACON_EVENT_TYPE}")
    if not isinstance(source, str):
        raise BeaconInvalid("source", "missing")
    try:
        vm = VmId.parse(source)
    except ResourceIdError:
        raise BeaconInvalid("source", f"{source[:200]!r} is not a VM resource id") from None
    if size is None or size > MAX_BEACON_BYTES:
        raise BeaconInvalid("data", f"must be JSON of at most {MAX_BEACON_BYTES} bytes")
    return Beacon(event_id=event_id, vm_id=vm.id, time=_time(time))


def hint_vaults(cfg: ChainConfig, vm_id: str) -> list[str]:
    """The vaults whose boards may watch ``vm_id``: its configured vault, or — a VM selected at
    run time, not listed — every configured vault of its subscription (Azure Backup protects a VM
    only with a vault of its own subscription). Empty: no chain can be backing it up."""
    for chain in cfg.chains:
        vault = chain.vault_of(vm_id)
        if vault is not None:
            return [vault]
    subscription = VmId.parse(vm_id).subscription
    return [v for v in cfg.vault_ids() if VaultId.parse(v).subscription.lower() == subscription]
