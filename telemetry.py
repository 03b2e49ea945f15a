"""Application Insights through OpenTelemetry, only when a connection string is configured, so
devhost and tests stay offline. The import is deferred: it costs nothing when telemetry is off."""

from __future__ import annotations

import json
import logging
import os

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
EVENT_LOGGER = "backup_chain.events"
_configured = False


def configure() -> bool:
    """Send logs and traces to Application Insights if its connection string is set."""
    global _configured
    if _configured or not os.environ.get(CONNECTION_SETTING):
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    # The app's identity authenticates ingestion when APPLICATIONINSIGHTS_AUTHENTICATION_STRING
    # says so (set by infra); the logger names keep the app's records apart from the SDKs'.
    configure_azure_monitor(logger_name="backup_chain")
    _configured = True
    return True


EVENT_DIMENSIONS = (
    "chain",
    "runId",
    "vmId",
    "jobId",
    "errorCode",
    "phase",
    "finding",
    "outcome",
    "snapshotCompletedAt",
    "triggeredAt",
    "jobEndedAt",
    "counts",
)


def record_event(event: dict[str, object]) -> None:
    """Log a published downstream event as an Application Insights custom event (never sampled
    out, see host.json) with the ids an operator filters on (docs/operations.md's queries).

    The Azure Monitor exporter turns a record carrying ``microsoft.custom_event.name`` into a
    customEvents row of that name and every other ``extra`` key into a customDimensions entry
    (azure-monitor-opentelemetry-exporter, export/logs/_exporter.py). Data fields the event does
    not carry are left out, not sent as null; an object (ChainCompleted's ``counts``) is sent as its
    JSON text, which Kusto reads back with parse_json (a custom dimension is a string)."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    dimensions = {
        key: json.dumps(data[key], sort_keys=True) if isinstance(data[key], dict) else data[key]
        for key in EVENT_DIMENSIONS
        if data.get(key) is not None
    }
    logging.getLogger(EVENT_LOGGER).info(
        "%s %s",
        event.get("type"),
        event.get("subject"),
        extra={
            "microsoft.custom_event.name": str(event.get("type")),
            "eventId": event.get("id"),
            "eventTime": event.get("time"),
            **dimensions,
        },
    )


UNDELIVERED_METRIC = "backupchain.events.undelivered"
_counter: object | None = None


def _undelivered_counter() -> object | None:
    """The OpenTelemetry counter exported to Application Insights as a custom metric (a no-op
    meter when telemetry is off); None if the OpenTelemetry API is not installed."""
    global _counter
    if _counter is None:
        try:
            from opentelemetry import metrics
        except ImportError:  # pragma: no cover - installed with azure-monitor-opentelemetry
            return None
        _counter = metrics.get_meter("backup_chain").create_counter(
            UNDELIVERED_METRIC, unit="{event}", description="Downstream events the topic refused or never accepted"
        )
    return _counter


def record_undelivered(event: dict[str, object], reason: str) -> None:
    """An event the downstream topic refused for good (or past the retry horizon): an ERROR line
    naming the event id and reason, and one count on the undelivered metric."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    logging.getLogger("backup_chain").error(
        "downstream event %s (%s, %s) undelivered: %s",
        event.get("id"),
        event.get("type"),
        event.get("subject"),
        reason,
        extra={
            "microsoft.custom_event.name": "EventUndelivered",
            "eventId": event.get("id"),
            "eventType": event.get("type"),
            "chain": data.get("chain"),
            "runId": data.get("runId"),
            "vmId": data.get("vmId"),
            "reason": reason,
        },
    )
    counter = _undelivered_counter()
    if counter is not None:
        counter.add(1, {"eventType": str(event.get("type")), "reason": reason.split(":", 1)[0]})  # type: ignore[attr-defined]
