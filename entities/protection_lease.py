"""``protection_lease``: one entity per protected item counting who needs protection on (the GC
window, each running backup). Callers do the I/O the entity tells them to (entities do none)."""

from __future__ import annotations

import azure.durable_functions as df

from backup_chain.gc import Lease, lease_apply
from backup_chain.ids import protection_lease_key

bp = df.Blueprint()


def lease_entity(vm_id: str) -> df.EntityId:
    return df.EntityId("protection_lease", protection_lease_key(vm_id))


@bp.entity_trigger(context_name="context")
def protection_lease(context: df.DurableEntityContext) -> None:
    lease = Lease.from_state(context.get_state(lambda: None))
    args = context.get_input() or {}
    result = lease_apply(lease, context.operation_name or "", args)
    state = lease.to_state()
    state["item"] = (context.get_state(lambda: None) or {}).get("item") or args.get("item")
    context.set_state(state)
    context.set_result(result)
