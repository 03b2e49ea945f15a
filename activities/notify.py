"""Telling a parent orchestration about a child's progress (a job id, a freed parallelism slot)
before the child ends: an activity raising an event with the durable client, since an orchestrator
has no API to raise an event into another orchestration."""

from __future__ import annotations

import logging

import azure.durable_functions as df

from backup_chain.messages import Notice, NoticeResult

bp = df.Blueprint()
log = logging.getLogger(__name__)
_GONE = ("is gone", "No instance with ID")  # the Python client's 410 and 404 messages


@bp.activity_trigger(input_name="notice")
@bp.durable_client_input(client_name="client")
async def tell_parent(notice: Notice, client: df.DurableOrchestrationClient) -> NoticeResult:
    """Input: ``instanceId``, ``event`` and ``data``. A parent that already ended (410, 404) has
    nothing to hear: ``{"ok": False}``. Other failures raise, so the caller's retry sends again."""
    try:
        await client.raise_event(notice["instanceId"], notice["event"], notice["data"])
    except Exception as err:
        if any(text in str(err) for text in _GONE):
            log.info("%s: %s not told (%s)", notice["instanceId"], notice["event"], err)
            return {"ok": False, "gone": True}
        raise
    return {"ok": True}
