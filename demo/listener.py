"""A stand-in downstream consumer for the local stack: a loopback webhook subscribed to the
downstream topic, so the Event Grid emulator delivers the app's events somewhere and records when
(``/admin/deliveries``) — the moment downstream heard, which a run's timeline marks.

It answers the CloudEvents v1.0 abuse-protection handshake (``OPTIONS`` with
``WebHook-Request-Origin`` -> ``WebHook-Allowed-Origin``, as learn.microsoft.com/azure/event-grid/
end-point-validation-cloud-events-schema describes) and acknowledges every delivery with 200.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def do_OPTIONS(self) -> None:
        origin = self.headers.get("WebHook-Request-Origin")
        if not origin:
            self.send_error(400, "WebHook-Request-Origin is required")
            return
        self.send_response(200)
        self.send_header("WebHook-Allowed-Origin", origin)
        # cloudevents/spec http-webhook.md 4.2: MUST answer a WebHook-Request-Rate, SHOULD give one otherwise.
        self.send_header("WebHook-Allowed-Rate", "*")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator's delivery record is the log."""


class DownstreamListener:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="downstream-listener", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def start(self) -> DownstreamListener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
