"""Reading the downstream outbox from HTTP and timer triggers: what one run keeps, and which runs
keep anything (the ``delivery_index``)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.delivery import Outbox
from entities.delivery_outbox import index_entity, outbox_entity


async def outbox_summary(client: df.DurableOrchestrationClient, key: str) -> dict[str, Any]:
    state = await client.read_entity_state(outbox_entity(key))
    outbox = Outbox.from_state(state.entity_state if state and state.entity_exists else None)
    return {**outbox.summary(), "key": key}


async def kept_keys(client: df.DurableOrchestrationClient) -> list[str]:
    state = await client.read_entity_state(index_entity())
    value = state.entity_state if state and state.entity_exists else None
    return [str(k) for k in value] if isinstance(value, list) else []
