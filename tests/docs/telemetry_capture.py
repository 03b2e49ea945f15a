"""What the app sends to Application Insights, captured for real: tests/docs/emit_telemetry.py runs
the app's telemetry (azure-monitor-opentelemetry) in a subprocess whose connection string points
its ingestion endpoint at a loopback HTTP server here, which records the envelopes the exporter
posts to ``/v2.1/track`` and answers as the Breeze ingestion API does (itemsReceived/Accepted)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EMITTER = Path(__file__).with_name("emit_telemetry.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
# Envelope data types -> the Application Insights table each lands in (Kusto's names).
TABLES = {"EventData": "customEvents", "MessageData": "traces", "MetricData": "customMetrics"}
# The exporter's own health metrics (statsbeat-like "Item_*_Count") and the standard performance
# counters are not the app's telemetry: only what the app's loggers and meters produce counts.
APP_METRIC_PREFIX = "backupchain."


@dataclass(frozen=True)
class Row:
    """One row as Kusto sees it: ``name`` (event or metric), ``message`` (traces) and the keys
    of ``customDimensions`` (``values``: those keys with their values, as strings)."""

    table: str
    name: str
    message: str
    dimensions: frozenset[str]
    values: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Emitted:
    rows: list[Row] = field(default_factory=list)

    def table(self, table: str) -> list[Row]:
        return [row for row in self.rows if row.table == table]


def rows_of(envelope: dict[str, Any]) -> list[Row]:
    data = envelope.get("data") or {}
    table = TABLES.get(str(data.get("baseType")))
    base = data.get("baseData") or {}
    properties = base.get("properties") or {}
    dimensions = frozenset(properties.keys())
    values = frozenset((str(key), str(value)) for key, value in properties.items())
    if table == "customMetrics":
        return [
            Row(table, str(metric["name"]), "", dimensions, values)
            for metric in base.get("metrics", [])
            if str(metric["name"]).startswith(APP_METRIC_PREFIX)
        ]
    if table is None:
        return []
    return [Row(table, str(base.get("name", "")), str(base.get("message", "")), dimensions, values)]


@contextmanager
def ingestion_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    envelopes: list[dict[str, Any]] = []

    class Track(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            items = json.loads(body) if self.path.endswith("/track") else []
            envelopes.extend(items)
            answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
            self.send_response(200 if self.path.endswith("/track") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Track)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", envelopes
    finally:
        server.shutdown()
        server.server_close()


def capture() -> Emitted:
    """Run the emitter against a loopback ingestion endpoint and return the rows it produced."""
    with ingestion_endpoint() as (endpoint, envelopes):
        env = {
            **os.environ,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={endpoint}"
            ),
            # Offline: no statsbeat to Microsoft's endpoints, no Azure VM metadata (IMDS) lookup.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            "NO_PROXY": "127.0.0.1",
        }
        env.pop("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", None)
        done = subprocess.run(
            [sys.executable, str(EMITTER)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"emitter failed ({done.returncode}): {done.stderr[-2000:]}"
        return Emitted([row for envelope in envelopes for row in rows_of(envelope)])
