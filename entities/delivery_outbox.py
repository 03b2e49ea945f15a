"""``delivery_outbox``: one entity per run keeping the downstream events the topic has not accepted
yet (``backup_chain.delivery.Outbox``); ``delivery_index``: the one entity listing the runs whose
outbox keeps anything, for the sweep and the operator's retry route. Entities do no I/O."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.delivery import Outbox, outbox_apply
from backup_chain.ids import DELIVERY_INDEX_KEY, outbox_entity_key

bp = df.Blueprint()


def outbox_entity(key: str) -> df.EntityId:
    return df.EntityId("delivery_outbox", outbox_entity_key(key))


def index_entity() -> df.EntityId:
    return df.EntityId("delivery_index", DELIVERY_INDEX_KEY)


@bp.entity_trigger(context_name="context")
def delivery_outbox(context: df.DurableEntityContext) -> None:
    outbox = Outbox.from_state(context.get_state(lambda: None))
    args: dict[str, Any] = context.get_input() or {}
    result = outbox_apply(outbox, context.operation_name or "", args)
    context.set_state(outbox.to_state())
    context.set_result(result)


@bp.entity_trigger(context_name="context")
def delivery_index(context: df.DurableEntityContext) -> None:
    keys: list[str] = list(context.get_state(lambda: []) or [])
    args: dict[str, Any] = context.get_input() or {}
    operation = context.operation_name or ""
    if operation == "add":
        if args["key"] not in keys:
            keys.append(str(args["key"]))
    elif operation == "remove":
        keys = [k for k in keys if k != args["key"]]
    elif operation != "list":
        raise ValueError(f"delivery_index has no operation {operation!r}; use add, remove or list")
    context.set_state(keys)
    context.set_result(keys)
