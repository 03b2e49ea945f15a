"""Publishing to the Event Grid emulator through the real EventGridPublisherClient over HTTPS:
both schemas, every auth method, Azure's rejections and limits, and the JSONL event log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from tests.integration.eg_support import (
    Emulator,
    FakeTokenCredential,
    WebhookServer,
    emulator_fixture_body,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, WebhookServer]]:
    yield from emulator_fixture_body(tmp_path_factory.mktemp("eventgrid-publish"))


@pytest.fixture
def emulator(env: tuple[Emulator, WebhookServer]) -> Emulator:
    emulator, webhook = env
    emulator.reset()
    webhook.clear()
    return emulator


def client(emulator: Emulator, topic: str, credential: Any = None) -> EventGridPublisherClient:
    info = emulator.topic(topic)
    return EventGridPublisherClient(info["endpoint"], credential or AzureKeyCredential(info["key"]))


def eg_event(subject: str = "/vms/app01", event_type: str = "Backup.Completed", **data: Any) -> EventGridEvent:
    return EventGridEvent(subject=subject, event_type=event_type, data=data or {"vm": "app01"}, data_version="1.0")


def error_of(exc: HttpResponseError) -> dict[str, Any]:
    assert exc.response is not None
    return dict(json.loads(exc.response.text())["error"])


def test_cloudevents_single_and_batch_are_accepted_and_logged(emulator: Emulator) -> None:
    publisher = client(emulator, "cloud")
    publisher.send(CloudEvent(source="/backup-chain", type="Backup.Started", data={"vm": "app01"}))
    batch = [CloudEvent(source="/backup-chain", type="Backup.Step", data={"n": n}, subject=f"/s/{n}") for n in range(3)]
    publisher.send(batch)

    events = emulator.get("/admin/events", topic="cloud")["events"]
    assert [e["event"]["type"] for e in events] == ["Backup.Started"] + ["Backup.Step"] * 3
    assert all(e["event"]["specversion"] == "1.0" and e["schema"] == "CloudEventSchemaV1_0" for e in events)
    assert [e["event"]["id"] for e in events[1:]] == [c.id for c in batch]

    lines = (emulator.state_dir / "events" / "cloud.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [r["event"]["id"] for r in logged] == [e["event"]["id"] for e in events]
    assert logged[1]["event"]["data"] == {"n": 0} and logged[1]["topic"] == "cloud"


def test_eventgrid_schema_events_are_stamped_like_azure(emulator: Emulator) -> None:
    client(emulator, "orders").send([eg_event(), eg_event(subject="/vms/db01")])
    events = [e["event"] for e in emulator.get("/admin/events", topic="orders")["events"]]
    assert [e["subject"] for e in events] == ["/vms/app01", "/vms/db01"]
    expected_topic = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
        "/providers/Microsoft.EventGrid/topics/orders"
    )
    assert all(e["topic"] == expected_topic and e["metadataVersion"] == "1" for e in events)
    assert events[0]["dataVersion"] == "1.0" and events[0]["eventType"] == "Backup.Completed"


def test_sas_key_sas_token_and_bearer_token_are_accepted(emulator: Emulator) -> None:
    info = emulator.topic("orders")
    client(emulator, "orders").send(eg_event(method="key"))
    token = generate_sas(info["endpoint"], info["key"], emulator.now() + timedelta(hours=1))
    client(emulator, "orders", AzureSasCredential(token)).send(eg_event(method="sas"))
    credential = FakeTokenCredential()
    client(emulator, "orders", credential).send(eg_event(method="bearer"))

    assert credential.scopes == ["https://eventgrid.azure.net/.default"]
    methods = [e["event"]["data"]["method"] for e in emulator.get("/admin/events", topic="orders")["events"]]
    assert methods == ["key", "sas", "bearer"]
    assert emulator.get("/admin/requests")["requests"]["publish orders 200"] == 3


def test_bad_credentials_are_rejected_with_401(emulator: Emulator) -> None:
    info = emulator.topic("orders")
    with pytest.raises(ClientAuthenticationError) as bad_key:
        client(emulator, "orders", AzureKeyCredential("bm90LXRoZS1rZXk=")).send(eg_event())
    assert bad_key.value.status_code == 401
    error = error_of(bad_key.value)
    assert error["code"] == "Unauthorized"
    assert error["message"].startswith("The request authorization key is not authorized for ")
    assert error["message"].endswith("to our forums for assistance or raise a support ticket.")

    expired = generate_sas(info["endpoint"], info["key"], emulator.now() - timedelta(minutes=5))
    with pytest.raises(ClientAuthenticationError):
        client(emulator, "orders", AzureSasCredential(expired)).send(eg_event())
    other_key = emulator.topic("cloud")["key"]
    forged = generate_sas(info["endpoint"], other_key, emulator.now() + timedelta(hours=1))
    with pytest.raises(ClientAuthenticationError):
        client(emulator, "orders", AzureSasCredential(forged)).send(eg_event())

    anonymous = requests.post(f"{info['endpoint']}?api-version=2018-01-01", json=[], verify=emulator.ca, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"].startswith(
        "Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key."
    )
    assert emulator.get("/admin/events", topic="orders")["events"] == []


def test_malformed_events_are_rejected_with_azure_codes(emulator: Emulator) -> None:
    orders = client(emulator, "orders")
    missing_subject = {"id": "1", "eventType": "X", "eventTime": "2025-01-01T00:00:00Z", "data": {}, "dataVersion": "1"}
    with pytest.raises(HttpResponseError) as missing:
        orders.send([missing_subject])
    assert missing.value.status_code == 400
    error = error_of(missing.value)
    assert error["code"] == "BadRequest" and error["details"][0]["code"] == "InputJsonInvalid"
    assert error["message"].startswith(
        "This resource is configured for 'EventGridEvent' schema and requires 'subject' property to be set."
    )

    bad_time = dict(missing_subject, subject="/s", eventTime="yesterday")
    with pytest.raises(HttpResponseError) as time_error:
        orders.send([bad_time])
    assert time_error.value.status_code == 400

    # Wrong schema: Event Grid events sent to a CloudEvents topic (the SDK posts application/json).
    with pytest.raises(HttpResponseError) as wrong_schema:
        client(emulator, "cloud").send(eg_event())
    assert wrong_schema.value.status_code == 400
    assert error_of(wrong_schema.value)["message"].startswith(
        "This resource is configured to receive event in 'CloudEventV10' schema. The JSON received does not "
        "conform to the expected schema. Token Expected: StartObject, Actual Token Received: StartArray."
    )
    with pytest.raises(HttpResponseError) as no_source:
        client(emulator, "cloud").send([{"id": "1", "type": "T", "specversion": "1.0", "source": ""}])
    assert "requires 'source' property to be set" in error_of(no_source.value)["message"]

    info = emulator.topic("cloud")
    headers = {"aeg-sas-key": info["key"], "Content-Type": "text/plain"}
    url = f"{info['endpoint']}?api-version=2018-01-01"
    wrong_type = requests.post(url, data=b"{}", headers=headers, verify=emulator.ca, timeout=10)
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["details"][0]["code"] == "InvalidContentType"

    orders_info = emulator.topic("orders")
    not_json = requests.post(
        f"{orders_info['endpoint']}?api-version=2018-01-01",
        data=b"[{not json",
        headers={"aeg-sas-key": orders_info["key"], "Content-Type": "application/json"},
        verify=emulator.ca,
        timeout=10,
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["details"][0]["code"] == "InputJsonInvalid"
    assert emulator.get("/admin/events", topic="orders")["events"] == []
    assert emulator.get("/admin/events", topic="cloud")["events"] == []


def test_lone_surrogates_and_deep_nesting_are_rejected_with_400(emulator: Emulator) -> None:
    """A string with half a UTF-16 surrogate pair, or JSON nested deeper than .NET readers' default
    64 levels, is InputJsonInvalid (400), not a server error; a valid pair and 64 levels are fine."""
    info = emulator.topic("orders")
    url = f"{info['endpoint']}?api-version=2018-01-01"
    headers = {"aeg-sas-key": info["key"], "Content-Type": "application/json"}
    event = '{"id":"%s","subject":"/s","eventType":"T","eventTime":"2025-01-01T00:00:00Z","dataVersion":"1","data":%s}'

    def post(event_id: str, data: str) -> requests.Response:
        body = ("[" + event % (event_id, data) + "]").encode()
        return requests.post(url, data=body, headers=headers, verify=emulator.ca, timeout=10)

    for data in ('"half \\ud800 a pair"', '{"\\udc00": 1}', '"\\ud83d"'):
        refused = post("bad", data)
        assert refused.status_code == 400, (data, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "BadRequest" and error["details"][0]["code"] == "InputJsonInvalid"
        assert "unpaired UTF-16 surrogate" in error["message"]
    for depth in (63, 100_000):  # the batch array + event + 63 levels of data = 65
        refused = post("deep", "[" * depth + "]" * depth)
        assert refused.status_code == 400, depth
        assert refused.json()["error"]["message"].startswith("The reader's MaxDepth of 64 has been exceeded.")
    assert emulator.get("/admin/events", topic="orders")["events"] == []

    assert post("pair", '"\\ud83d\\ude00"').status_code == 200  # a valid pair: one emoji
    assert post("nested", "[" * 62 + "]" * 62).status_code == 200  # the batch array + event + 62 = 64
    events = emulator.get("/admin/events", topic="orders")["events"]
    assert [e["event"]["id"] for e in events] == ["pair", "nested"]
    assert events[0]["event"]["data"] == "\U0001f600"


def test_oversized_event_and_batch_are_rejected_with_413(emulator: Emulator) -> None:
    orders = client(emulator, "orders")
    with pytest.raises(HttpResponseError) as one_big:
        orders.send(eg_event(blob="x" * 1_100_000))
    assert one_big.value.status_code == 413
    error = error_of(one_big.value)
    assert error["code"] == "RequestEntityTooLarge"
    assert error["message"] == "The maximum size (1049600) has been exceeded."

    with pytest.raises(HttpResponseError) as big_batch:
        orders.send([eg_event(blob="x" * 800_000), eg_event(blob="y" * 800_000)])
    assert big_batch.value.status_code == 413
    assert error_of(big_batch.value)["message"] == "The maximum size (1536000) has been exceeded."

    orders.send([eg_event(blob="x" * 700_000), eg_event(blob="y" * 700_000)])  # under both limits
    assert len(emulator.get("/admin/events", topic="orders")["events"]) == 2


def test_unknown_topic_is_404(emulator: Emulator) -> None:
    info = emulator.topic("orders")
    endpoint = info["endpoint"].replace("/topics/orders/", "/topics/nope/")
    with pytest.raises(ResourceNotFoundError):
        EventGridPublisherClient(endpoint, AzureKeyCredential(info["key"])).send(eg_event())
    raw = requests.post(
        f"{endpoint}?api-version=2018-01-01",
        json=[],
        headers={"aeg-sas-key": info["key"]},
        verify=emulator.ca,
        timeout=10,
    )
    assert raw.status_code == 404
    error = raw.json()["error"]
    assert error["code"] == "NotFound" and error["details"][0]["code"] == "ResourceNotFound"
    assert error["message"].startswith("No HTTP resource was found that matches the request URI")
