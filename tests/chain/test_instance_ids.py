"""The naming scheme of backup_chain/ids.py: its table names every builder, each id starts with the
prefix the table gives, and the prefixes find exactly what the app queries them for (a run's cancel
terminates its VM backups, batches and watchers and nothing of another run)."""

from __future__ import annotations

import inspect
import re
from datetime import datetime, timezone

from backup_chain import ids
from backup_chain.delivery import outbox_key
from backup_chain.events import chain_cloud_event

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/App01"
VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1"
DUE = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)


def _table_rows() -> dict[str, str]:
    """``built by`` → ``id or key`` from the module docstring's table."""
    doc = ids.__doc__ or ""
    rows = re.findall(r"^\S.*?\s{2,}(``[^\n]*?)\s{2,}``(\w+)``\s*$", doc, flags=re.MULTILINE)
    return {builder: pattern for pattern, builder in rows}


def test_the_table_names_every_id_builder_and_nothing_else() -> None:
    builders = {
        name for name, value in vars(ids).items() if inspect.isfunction(value) and name.endswith(("_id", "_key"))
    }
    constants = {name for name in vars(ids) if name.endswith(("_ID", "_KEY"))}
    public = {name for name in builders | constants if not name.startswith("_")} - {"valid_run_id"}
    assert public == set(_table_rows()), "backup_chain/ids.py: table and builders differ"


def test_each_id_starts_with_the_prefix_its_table_row_gives() -> None:
    vm_backup = ids.vm_instance_id("r1", "Nightly", VM)
    built = {
        "chain_instance_id": ids.chain_instance_id("Nightly", "r1"),
        "scheduler_instance_id": ids.scheduler_instance_id("Nightly"),
        "vm_instance_id": vm_backup,
        "vm_batch_instance_id": ids.vm_batch_instance_id("Nightly", "r1", 7),
        "watcher_instance_id": ids.watcher_instance_id(vm_backup, "snapshot"),
        "poller_instance_id": ids.poller_instance_id(VAULT),
        "GC_SCHEDULER_ID": ids.GC_SCHEDULER_ID,
        "gc_due_instance_id": ids.gc_due_instance_id("check", DUE),
        "gc_manual_instance_id": ids.gc_manual_instance_id("window", DUE),
        "outbox_run_key": ids.outbox_run_key("Nightly", "r1"),
        "reclaim_instance_id": ids.reclaim_instance_id(VM, vm_backup),
        "deliverer_instance_id": ids.deliverer_instance_id(ids.outbox_run_key("Nightly", "r1")),
        "job_watch_key": ids.job_watch_key(VAULT),
        "protection_lease_key": ids.protection_lease_key(VM),
        "outbox_entity_key": ids.outbox_entity_key(ids.outbox_run_key("Nightly", "r1")),
        "DELIVERY_INDEX_KEY": ids.DELIVERY_INDEX_KEY,
        "retry_run_id": ids.chain_instance_id("Nightly", ids.retry_run_id("r1") or ""),
        "control_instance_id": ids.control_instance_id("Nightly", "pause", "20270110T020000Z"),
        "chain_control_key": ids.chain_control_key("Nightly"),
    }
    rows = _table_rows()
    assert set(built) == set(rows)
    for builder, value in built.items():
        literal = rows[builder].split("``")[1].split("{", 1)[0]  # the fixed text before the first field
        assert value.startswith(literal), (builder, value, literal)
    assert built["chain_instance_id"] == "chain:nightly:r1"
    assert built["vm_batch_instance_id"] == "vm:nightly:r1:batch007"
    assert built["gc_due_instance_id"] == "gc:check:20270110T0200Z"
    assert built["retry_run_id"] == "chain:nightly:r1-r1" and built["chain_control_key"] == "nightly"
    assert built["job_watch_key"] == ids.poller_instance_id(VAULT).removeprefix("poller:") == ids.resource_hash(VAULT)


def test_cancel_prefix_finds_the_runs_backups_batches_and_watchers_only() -> None:
    prefix = ids.vm_run_prefix("Nightly", "r1")
    vm_backup = ids.vm_instance_id("r1", "nightly", VM)
    own = [
        vm_backup,
        ids.vm_batch_instance_id("nightly", "r1", 0),
        ids.watcher_instance_id(vm_backup, "snapshot"),
        ids.watcher_instance_id(vm_backup, "wait2"),
    ]
    others = [
        ids.vm_instance_id("r10", "nightly", VM),  # a run whose id starts with this one's
        ids.vm_instance_id("r1", "nightly-etl", VM),  # a chain whose name starts with this one's
        ids.vm_batch_instance_id("other", "r1", 0),
        ids.chain_instance_id("nightly", "r1"),
    ]
    assert [i for i in own + others if i.startswith(prefix)] == own
    # Batches are terminated first (a batch that saw its VMs end would start the next ones).
    assert [ids.is_vm_batch(i) for i in own] == [False, True, False, False]


def test_gc_prefixes_find_their_kind_only() -> None:
    check = ids.gc_due_instance_id("check", DUE)
    manual = ids.gc_manual_instance_id("window", DUE)
    assert manual == "gc:window:manual-20270110T020000000000Z"
    assert [i.startswith(ids.gc_prefix("check")) for i in (check, manual, ids.GC_SCHEDULER_ID)] == [True, False, False]
    assert manual.startswith(ids.gc_prefix("window"))


def test_chain_and_run_ids_round_trip() -> None:
    assert ids.run_id_of(ids.chain_instance_id("Nightly", "w-20270110T020000Z")) == "w-20270110T020000Z"
    assert ids.chain_instance_id("a", "r1").startswith(ids.chain_prefix("A"))
    assert not ids.chain_instance_id("ab", "r1").startswith(ids.chain_prefix("a"))


def test_a_runs_events_land_in_the_outbox_its_routes_read() -> None:
    event = chain_cloud_event(
        prefix="Contoso.Backup.", chain="Nightly", run_id="r1", source="/app", event_type="ChainStarted", time="t"
    )
    assert outbox_key(event) == ids.outbox_run_key("Nightly", "r1") == "nightly:r1"
    assert ids.deliverer_instance_id("nightly:r1") == "deliver:" + ids.outbox_entity_key("nightly:r1")
    assert len(ids.outbox_entity_key("nightly:" + "x" * 200)) == 32
