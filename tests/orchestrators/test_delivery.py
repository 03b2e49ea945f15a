"""``deliver_events``: drains a run's outbox into the topic — sends, backs off on transient
failures (a wake cuts the wait short), and keeps events undelivered, reported, when the topic
refuses them or does not take them within the horizon. The outbox entity is the app's own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_chain.delivery import BATCH_EVENTS
from backup_chain.errors import failure
from backup_chain.ids import outbox_entity_key
from orchestrators.delivery import ROUNDS_PER_EXECUTION
from tests.support.activity_script import ok
from tests.support.orchestrator_tier import OrchestratorTier, custom, moment


def _kept(tier: OrchestratorTier, key: str, count: int, since_seconds: float = 0) -> list[str]:
    """Keep ``count`` events of run ``key`` in its outbox (what publish_events does); their ids."""
    chain, run = key.split(":")
    events: list[dict[str, Any]] = [
        {
            "id": f"{key}-e{n}",
            "type": "BackupChain.BackupTriggered",
            "subject": f"/vm-{n}",
            "data": {"chain": chain, "runId": run},
        }
        for n in range(count)
    ]
    add = {"key": key, "events": events, "reason": "topic unreachable", "at": tier.at(-since_seconds)}
    tier.signal("delivery_outbox", outbox_entity_key(key), "add", add)
    tier.settle()
    return [str(e["id"]) for e in events]


def _spec(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "retrySeconds": 86400, "firstBackoffSeconds": 30, "maxBackoffSeconds": 600, **extra}


def _refused(status: int | None, code: str | None = None) -> dict[str, Any]:
    """A send_event_batch answer (activities/events.py try_send): the topic did not take the batch."""
    return ok({"ok": False, "error": failure(status, code, "scripted").to_dict()})


def test_kept_events_are_sent_oldest_first_and_the_outbox_emptied(tier: OrchestratorTier) -> None:
    key = "dl-ok:r1"
    ids = _kept(tier, key, 2)
    tier.script.on("send_event_batch", ids[0], ok({"ok": True, "count": 2}))
    output = tier.run("deliver_events", "deliver:dl-ok", _spec(key))["output"]
    assert output == {"key": key, "delivered": 2, "undelivered": 0}
    (batch,) = tier.script.requests("send_event_batch", ids[0])
    assert [e["id"] for e in batch["events"]] == ids


def test_a_transient_failure_is_retried_after_a_backoff(tier: OrchestratorTier) -> None:
    key = "dl-retry:r1"
    ids = _kept(tier, key, 1)
    tier.script.on(
        "send_event_batch",
        ids[0],
        _refused(503),
        _refused(None, "NetworkError"),
        ok({"ok": True, "count": 1}),
    )
    output = tier.run("deliver_events", "deliver:dl-retry", _spec(key))["output"]
    assert output["delivered"] == 1 and output["undelivered"] == 0
    started = tier.started_at("deliver:dl-retry")
    assert [t - started for t in tier.timers("deliver:dl-retry")] == [timedelta(seconds=30), timedelta(seconds=90)]
    assert tier.script.calls("report_undelivered", ids[0]) == []


def test_a_topic_refusing_the_app_keeps_the_events_undelivered_and_reports_them(tier: OrchestratorTier) -> None:
    key = "dl-refused:r1"
    ids = _kept(tier, key, 2)
    tier.script.on("send_event_batch", ids[0], _refused(403))
    output = tier.run("deliver_events", "deliver:dl-refused", _spec(key))["output"]
    assert output == {"key": key, "delivered": 0, "undelivered": 2}
    (report,) = tier.script.requests("report_undelivered", ids[0])
    assert [e["id"] for e in report["events"]] == ids and report["reason"].startswith("HTTP 403: ")
    assert tier.timers("deliver:dl-refused") == []  # no backoff for a refusal


def test_events_not_taken_within_the_horizon_are_reported_undelivered(tier: OrchestratorTier) -> None:
    key = "dl-expired:r1"
    ids = _kept(tier, key, 1, since_seconds=3600)
    tier.script.on("send_event_batch", ids[0], _refused(503))
    output = tier.run("deliver_events", "deliver:dl-expired", _spec(key, retrySeconds=1800))["output"]
    assert output["undelivered"] == 1
    (report,) = tier.script.requests("report_undelivered", ids[0])
    assert report["reason"].startswith("not accepted within 1800 s (delivery.retryFor); last error HTTP 503")


def test_a_wake_during_the_backoff_sends_at_once(tier: OrchestratorTier) -> None:
    key = "dl-wake:r1"
    ids = _kept(tier, key, 1)
    tier.script.on("send_event_batch", ids[0], _refused(503), ok({"ok": True, "count": 1}))
    tier.begin("deliver_events", "deliver:dl-wake", _spec(key, firstBackoffSeconds=3600))
    tier.drive("deliver:dl-wake", lambda s: custom(s, "phase") == "retrying")
    tier.raise_event("deliver:dl-wake", "wake", {"retry": False})
    status = tier.drive("deliver:dl-wake")
    assert status["output"]["delivered"] == 1
    assert moment(status["lastUpdatedTime"]) < tier.timers("deliver:dl-wake")[0]  # before the backoff ended


def test_a_retry_from_the_sweep_sends_events_kept_undelivered(tier: OrchestratorTier) -> None:
    key = "dl-sweep:r1"
    ids = _kept(tier, key, 1)
    tier.script.on("send_event_batch", ids[0], _refused(403), ok({"ok": True, "count": 1}))
    first = tier.run("deliver_events", "deliver:dl-sweep", _spec(key))["output"]
    assert first["undelivered"] == 1
    again = tier.run("deliver_events", "deliver:dl-sweep", _spec(key, retry=True))["output"]
    assert again == {"key": key, "delivered": 1, "undelivered": 0}
    assert len(tier.script.calls("send_event_batch", ids[0])) == 2


def test_after_its_rounds_limit_it_continues_as_new_carrying_its_counts(tier: OrchestratorTier) -> None:
    key = "dl-canew:r1"
    ordered = sorted(_kept(tier, key, BATCH_EVENTS + 1))  # the outbox's order: same time and type, then id
    tier.script.on("send_event_batch", ordered[0], ok({"ok": True, "count": BATCH_EVENTS}))
    rounds = ROUNDS_PER_EXECUTION
    tier.script.on("send_event_batch", ordered[-1], *[_refused(503)] * (rounds - 1), ok({"ok": True, "count": 1}))
    began = tier.now()
    status = tier.run("deliver_events", "deliver:dl-canew", _spec(key))
    assert status["output"] == {"key": key, "delivered": BATCH_EVENTS + 1, "undelivered": 0}
    assert custom(status, "phase") == "idle" and custom(status, "delivered") == BATCH_EVENTS + 1
    # One full batch, then the rest of the first execution's rounds failing on the second one; the
    # next execution starts with the counts so far and sends at once (its first round is no retry).
    assert len(tier.script.calls("send_event_batch", ordered[0])) == 1
    assert len(tier.script.calls("send_event_batch", ordered[-1])) == rounds
    assert tier.input_of("deliver:dl-canew") == {
        **_spec(key),
        "attempt": rounds - 1,
        "delivered": BATCH_EVENTS,
        "retry": False,
    }
    backoffs = [min(600, 30 * 2**n) for n in range(rounds - 1)]  # 30, 60, ... capped at 600 s
    assert tier.started_at("deliver:dl-canew") == began + timedelta(seconds=sum(backoffs))
    assert tier.timers("deliver:dl-canew") == []
