"""Webhook delivery by the Event Grid emulator: validation handshakes (both kinds), Azure's headers
and bodies, filters, batching, retries on the manual clock, and dead-lettering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from devhost.procs import wait_until
from tests.integration.eg_support import Emulator, WebhookServer, emulator_fixture_body


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, WebhookServer]]:
    yield from emulator_fixture_body(tmp_path_factory.mktemp("eventgrid-delivery"))


@pytest.fixture
def setup(env: tuple[Emulator, WebhookServer]) -> tuple[Emulator, WebhookServer]:
    emulator, webhook = env
    emulator.reset()
    webhook.clear()
    return emulator, webhook


def publish(emulator: Emulator, topic: str, events: Any) -> None:
    info = emulator.topic(topic)
    EventGridPublisherClient(info["endpoint"], AzureKeyCredential(info["key"])).send(events)


def eg(subject: str, event_type: str = "Backup.Completed", **data: Any) -> EventGridEvent:
    return EventGridEvent(subject=subject, event_type=event_type, data=data or {"ok": True}, data_version="2.0")


def attempts(emulator: Emulator, subscription: str) -> list[dict[str, Any]]:
    deliveries = emulator.deliveries(subscription)
    return [h for d in deliveries for h in d["history"]]


def test_eventgrid_handshake_precedes_first_delivery(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    event = eg("/vms/app01")
    publish(emulator, "orders", event)
    delivered = wait_until(lambda: webhook.notifications("/eg/all"), what="delivery to /eg/all")

    requests_seen = webhook.at("/eg/all")
    assert [r.event_type for r in requests_seen] == ["SubscriptionValidation", "Notification"]
    validation = requests_seen[0]
    assert validation.body[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert set(validation.body[0]["data"]) == {"validationCode", "validationUrl"}
    assert validation.query == {"functionName": "onOrder", "code": "local-code"}

    note = delivered[0]
    assert note.query == {"functionName": "onOrder", "code": "local-code"}
    assert note.headers["aeg-subscription-name"] == "EG-ALL"
    assert note.headers["aeg-delivery-count"] == "0"
    assert note.headers["aeg-metadata-version"] == "1"
    assert note.headers["aeg-data-version"] == "2.0"
    assert note.headers["aeg-output-event-id"] == str(event.id)
    assert note.headers["Content-Type"].startswith("application/json")
    assert isinstance(note.body, list) and [e["id"] for e in note.body] == [str(event.id)]
    assert note.body[0]["topic"].endswith("/providers/Microsoft.EventGrid/topics/orders")

    # The handshake is done once per subscription.
    publish(emulator, "orders", eg("/vms/app02"))
    wait_until(lambda: len(webhook.notifications("/eg/all")) == 2, what="second delivery")
    assert len(webhook.at("/eg/all", "SubscriptionValidation")) == 1
    subs = {s["name"]: s for s in emulator.get("/admin/deliveries")["subscriptions"]}
    assert subs["eg-all"]["validation"] == "Succeeded"


def test_cloudevents_abuse_protection_then_structured_delivery(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    event = CloudEvent(source="/backup-chain", type="Backup.Started", data={"vm": "app01"}, subject="/vms/app01")
    publish(emulator, "cloud", event)
    delivered = wait_until(lambda: webhook.notifications("/ce/all"), what="delivery to /ce/all")

    options = webhook.at("/ce/all", method="OPTIONS")
    assert len(options) == 1 and options[0].headers["WebHook-Request-Origin"] == "eventgrid.azure.net"
    note = delivered[0]
    assert note.headers["Content-Type"].startswith("application/cloudevents+json")
    assert note.headers["aeg-metadata-version"] == "1.0"
    assert "aeg-data-version" not in note.headers
    assert note.body["id"] == event.id and note.body["type"] == "Backup.Started"
    assert note.body["data"] == {"vm": "app01"}


def test_cloudevents_batching_delivers_arrays(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    batch = [CloudEvent(source="/s", type="Batch.Me", data={"n": n}) for n in range(3)]
    publish(emulator, "cloud", batch)
    delivered = wait_until(lambda: webhook.notifications("/ce/batch"), what="batched delivery")
    assert delivered[0].headers["Content-Type"].startswith("application/cloudevents-batch+json")
    assert [e["data"]["n"] for e in delivered[0].body] == [0, 1, 2]
    # ce-all has no batching: one request per event.
    wait_until(lambda: len(webhook.notifications("/ce/all")) == 3, what="three single deliveries")


def test_subscription_filters(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    publish(
        emulator,
        "orders",
        [
            eg("/vms/app01", "Backup.Completed", n=1),  # matches eg-filtered
            eg("/VMS/APP01", "backup.completed", n=2),  # case-insensitive match; matches eg-case too
            eg("/vms/app01", "Backup.Failed", n=3),  # wrong type
            eg("/vms/app02", "Backup.Completed", n=4),  # wrong suffix
            eg("/other/app01", "Backup.Completed", n=5),  # wrong prefix
        ],
    )
    wait_until(lambda: len(webhook.notifications("/eg/all")) == 5, what="all five on eg-all")
    wait_until(lambda: emulator.deliveries("eg-filtered") and emulator.deliveries("eg-case"), what="deliveries")
    wait_until(
        lambda: all(
            d["state"] == "Delivered" for d in emulator.deliveries("eg-filtered") + emulator.deliveries("eg-case")
        ),
        what="filtered deliveries done",
    )
    assert sorted(r.body[0]["data"]["n"] for r in webhook.notifications("/eg/filtered")) == [1, 2]
    assert [r.body[0]["data"]["n"] for r in webhook.notifications("/eg/case")] == [2]


def test_retries_follow_azure_backoff_on_the_clock(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    webhook.script["/eg/flaky"] = [500, 503]
    publish(emulator, "orders", eg("/flaky/app01"))
    wait_until(lambda: len(attempts(emulator, "eg-flaky")) == 1, what="first attempt")
    assert attempts(emulator, "eg-flaky")[0]["httpStatusCode"] == 500

    emulator.advance(9)
    assert len(attempts(emulator, "eg-flaky")) == 1  # the first retry is due after 10 s
    emulator.advance(1)
    wait_until(lambda: len(attempts(emulator, "eg-flaky")) == 2, what="retry after 10 s")
    emulator.advance(29)
    assert len(attempts(emulator, "eg-flaky")) == 2  # the second retry is due 30 s later
    emulator.advance(1)
    wait_until(lambda: emulator.deliveries("eg-flaky")[0]["state"] == "Delivered", what="third attempt succeeds")

    counts = [r.headers["aeg-delivery-count"] for r in webhook.notifications("/eg/flaky")]
    assert counts == ["0", "1", "2"]
    assert [a["httpStatusCode"] for a in attempts(emulator, "eg-flaky")] == [500, 503, 200]


def test_dead_letter_after_max_delivery_attempts(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    webhook.script["/eg/flaky"] = [503, 503, 404, 200]
    event = eg("/flaky/db01")
    publish(emulator, "orders", event)
    wait_until(lambda: len(attempts(emulator, "eg-flaky")) == 1, what="first attempt")
    emulator.advance(10)
    wait_until(lambda: len(attempts(emulator, "eg-flaky")) == 2, what="second attempt")
    emulator.advance(30)
    wait_until(lambda: emulator.deliveries("eg-flaky")[0]["state"] == "DeadLettered", what="dead-letter")

    dead = emulator.get("/admin/deadletters", subscription="eg-flaky")["deadLetters"]
    assert len(dead) == 1
    record = dead[0]["event"]
    assert record["id"] == str(event.id)
    assert record["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert record["deliveryAttempts"] == 3 and record["lastDeliveryOutcome"] == "NotFound"
    lines = (emulator.state_dir / "deadletter" / "eg-flaky.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [str(event.id)]
    emulator.advance(3600)
    assert len(webhook.notifications("/eg/flaky")) == 3  # nothing more after dead-lettering


def test_non_retriable_status_dead_letters_immediately(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    webhook.script["/eg/reject"] = [400]
    publish(emulator, "orders", eg("/reject/app01"))
    wait_until(lambda: emulator.deliveries("eg-reject")[0]["state"] == "DeadLettered", what="dead-letter on 400")
    record = emulator.get("/admin/deadletters", subscription="eg-reject")["deadLetters"][0]["event"]
    assert record["deliveryAttempts"] == 1 and record["lastHttpStatusCode"] == 400


def test_time_to_live_expiry_dead_letters(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    webhook.script["/eg/ttl"] = [500] * 10
    publish(emulator, "orders", eg("/ttl/app01"))
    wait_until(lambda: len(attempts(emulator, "eg-ttl")) == 1, what="first attempt")
    emulator.advance(10)
    wait_until(lambda: len(attempts(emulator, "eg-ttl")) == 2, what="retry at 10 s")
    emulator.advance(30)
    wait_until(lambda: len(attempts(emulator, "eg-ttl")) == 3, what="retry at 40 s")
    emulator.advance(20)  # TTL is 1 minute; the next retry (at 100 s) would be past it
    wait_until(lambda: emulator.deliveries("eg-ttl")[0]["state"] == "DeadLettered", what="TTL dead-letter")
    record = emulator.get("/admin/deadletters", subscription="eg-ttl")["deadLetters"][0]["event"]
    assert record["deadLetterReason"] == "TimeToLiveExceeded" and record["deliveryAttempts"] == 3


def test_manual_validation_through_validation_url(setup: tuple[Emulator, WebhookServer]) -> None:
    emulator, webhook = setup
    webhook.manual.add("/eg/manual")
    publish(emulator, "orders", eg("/manual/app01"))
    validation = wait_until(lambda: webhook.at("/eg/manual", "SubscriptionValidation"), what="validation POST")
    wait_until(lambda: attempts(emulator, "eg-manual"), what="attempt recorded")
    assert webhook.notifications("/eg/manual") == []
    subs = {s["name"]: s for s in emulator.get("/admin/deliveries")["subscriptions"]}
    assert subs["eg-manual"]["validation"] == "AwaitingManualAction"

    url = validation[0].body[0]["data"]["validationUrl"]
    assert requests.get(url, verify=emulator.ca, timeout=10).status_code == 200
    emulator.advance(10)
    wait_until(lambda: webhook.notifications("/eg/manual"), what="delivery after manual validation")
