"""The Event Grid emulator failing like Azure for a publisher: refusing
publishes with 401/403/404, being unreachable, and being SIGKILLed and restarted with what it
accepted and its pending deliveries kept. Driven with the real EventGridPublisherClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

from activities.events import describe
from backup_chain.delivery import is_permanent
from devhost.procs import wait_until
from tests.integration.eg_support import CLOUD_KEY, Emulator, WebhookServer, start_emulator


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, WebhookServer, Path]]:
    webhook = WebhookServer().start()
    config = {
        "topics": [{"name": "cloud", "inputSchema": "CloudEventSchemaV1_0", "key": CLOUD_KEY}],
        "subscriptions": [
            {
                "name": "ce-sub",
                "topic": "cloud",
                "endpointUrl": webhook.url("/ce/sub"),
                "deliverySchema": "CloudEventSchemaV1_0",
            }
        ],
    }
    emulator = start_emulator(tmp_path, config)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca)
    try:
        yield emulator, webhook, tmp_path
    finally:
        emulator.service.stop(kill=True)
        webhook.stop()


def _send(emulator: Emulator, event_id: str) -> None:
    info = emulator.topic("cloud")
    client = EventGridPublisherClient(info["endpoint"], AzureKeyCredential(info["key"]))
    client.send([CloudEvent(source="/tests", type="T.One", subject="/s", data={"n": 1}, id=event_id)])


def _faults(emulator: Emulator, body: dict[str, Any]) -> Any:
    response = requests.post(f"{emulator.url}/admin/faults", json=body, verify=emulator.ca, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize(("status", "code"), [(401, "Unauthorized"), (403, "Forbidden"), (404, "NotFound")])
def test_publish_refusals_look_like_event_grid_and_clear(
    setup: tuple[Emulator, WebhookServer, Path], status: int, code: str
) -> None:
    emulator, _, _ = setup
    _faults(emulator, {"topic": "cloud", "status": status})
    with pytest.raises(HttpResponseError) as raised:
        _send(emulator, "refused-1")
    # What the app makes of it (azure-eventgrid hides a 404's status behind its cause): permanent.
    found = describe(raised.value)
    assert (found["status"], found["code"]) == (status, code) and is_permanent(found)
    assert emulator.get("/admin/events", topic="cloud")["events"] == []
    _faults(emulator, {"topic": "cloud"})
    _send(emulator, "accepted-1")
    assert [r["event"]["id"] for r in emulator.get("/admin/events", topic="cloud")["events"]] == ["accepted-1"]


def test_unreachable_topic_drops_the_connection(setup: tuple[Emulator, WebhookServer, Path]) -> None:
    emulator, _, _ = setup
    _faults(emulator, {"topic": "cloud", "mode": "unreachable"})
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        _send(emulator, "dropped-1")
    assert emulator.get("/admin/events", topic="cloud")["events"] == []
    assert emulator.get("/admin/faults")["faults"] == {"cloud": {"status": None, "mode": "unreachable"}}
    bad = requests.post(f"{emulator.url}/admin/faults", json={"topic": "cloud", "status": 500}, verify=emulator.ca)
    assert bad.status_code == 400


def test_sigkill_and_restart_keeps_accepted_events_and_pending_deliveries(
    setup: tuple[Emulator, WebhookServer, Path],
) -> None:
    emulator, webhook, tmp = setup
    webhook.script["/ce/sub"] = [500]
    _send(emulator, "kept-1")
    wait_until(lambda: len(webhook.notifications("/ce/sub")) == 1, what="the first (failing) attempt")
    # Kill only once the emulator recorded the failed attempt: killed between the webhook's answer
    # and that record, it would rightly attempt again at once after the restart (at least once).
    wait_until(
        lambda: [(d["state"], d["attempts"]) for d in emulator.deliveries("ce-sub")] == [("Pending", 1)],
        what="the failed attempt recorded",
    )
    emulator.service.stop(kill=True)

    again = start_emulator(tmp, json.loads((tmp / "eventgrid.json").read_text()))
    setup_ca = again.ca
    try:
        assert [r["event"]["id"] for r in again.get("/admin/events", topic="cloud")["events"]] == ["kept-1"]
        pending = again.deliveries("ce-sub")
        assert [(d["eventIds"], d["state"], d["attempts"]) for d in pending] == [(["kept-1"], "Pending", 1)]
        assert setup_ca == emulator.ca  # the CA is kept, so publishers keep trusting it
        again.advance(10)  # Azure's first retry, 10 s after the failure
        wait_until(lambda: len(webhook.notifications("/ce/sub")) == 2, what="the retry after the restart")
        wait_until(lambda: again.deliveries("ce-sub")[0]["state"] == "Delivered", what="delivered")
        assert webhook.notifications("/ce/sub")[-1].body["id"] == "kept-1"
    finally:
        again.service.stop(kill=True)
