"""``chain_control``: one entity per chain holding whether it is paused (``backup_chain.chain_control``).
The pause and resume routes change it through ``change_chain_control`` (which also tells
downstream); the window scheduler and the upstream trigger read it. Entities do no I/O."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.chain_control import ChainControl, control_apply
from backup_chain.ids import chain_control_key

bp = df.Blueprint()


def control_entity(chain: str) -> df.EntityId:
    return df.EntityId("chain_control", chain_control_key(chain))


async def read_control(client: df.DurableOrchestrationClient, chain: str) -> ChainControl:
    """The chain's pause state as a client function reads it (never paused: no entity yet)."""
    found = await client.read_entity_state(control_entity(chain))
    return ChainControl.from_state(found.entity_state if found and found.entity_exists else None)


@bp.entity_trigger(context_name="context")
def chain_control(context: df.DurableEntityContext) -> None:
    control = ChainControl.from_state(context.get_state(lambda: None))
    args: dict[str, Any] = context.get_input() or {}
    result = control_apply(control, context.operation_name or "", args)
    context.set_state(control.to_state())
    context.set_result(result)
