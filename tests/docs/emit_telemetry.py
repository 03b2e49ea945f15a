"""Run in a subprocess by telemetry_capture: the app's real telemetry (telemetry.configure, i.e.
azure-monitor-opentelemetry) sending to the loopback ingestion endpoint in
APPLICATIONINSIGHTS_CONNECTION_STRING, fed every documented event example (docs/events/*.json)
as published and as undelivered."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import telemetry  # noqa: E402
from backup_chain.delivery import reason_of  # noqa: E402

# The Functions Python worker sets the root logger to INFO once its gRPC channel is up
# (azure-functions-python-worker, azure_functions_worker/dispatcher.py, dispatch_forever).
logging.getLogger().setLevel(logging.INFO)
if not telemetry.configure():
    sys.exit("telemetry.configure() did not configure Azure Monitor")

# One refusal as the deliverer reports it (backup_chain.delivery.reason_of of a send failure).
REFUSED = reason_of({"status": 403, "code": "Forbidden", "message": "the app's identity may not publish"})
for path in sorted((REPO_ROOT / "docs" / "events").glob("*.json")):
    event = json.loads(path.read_text())
    telemetry.record_event(event)
    telemetry.record_undelivered(event, REFUSED)

from opentelemetry._logs import get_logger_provider  # noqa: E402
from opentelemetry.metrics import get_meter_provider  # noqa: E402

# Export now rather than on the batch processors' and metric reader's intervals.
get_logger_provider().force_flush()  # type: ignore[attr-defined]
get_meter_provider().force_flush()  # type: ignore[attr-defined]
