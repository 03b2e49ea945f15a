"""A child orchestration telling its parent about its progress before it ends (deterministic: the
notice is an activity call; see activities/notify.py).

A child's input may carry ``tell``: ``{stage: [instanceId, eventName]}``. The parent that runs it
with bounded parallelism (``chain_run`` or ``vm_batch``) asks to hear ``snapshot``: the child's
parallelism slot is free once its snapshot phase is over."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import azure.durable_functions as df

from activities.notify import tell_parent
from backup_chain.messages import Notice
from orchestrators.common import AZURE_RETRY


def tell(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any], stage: str, **data: Any
) -> Generator[Any, Any, None]:
    """Tell the parent that asked for ``stage`` (nothing when none did). A notice that cannot be
    sent is not an error: the parent also counts the child's end."""
    target = (spec.get("tell") or {}).get(stage)
    if not target:
        return
    instance_id, event_name = target
    try:
        notice: Notice = {"instanceId": instance_id, "event": event_name, "data": data}
        yield context.call_activity_with_retry(tell_parent, AZURE_RETRY, notice)
    except Exception:  # retries exhausted: the parent falls back to the child's end
        return
