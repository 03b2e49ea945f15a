"""A stand-in app on a loopback port, for answers the real app never gives (redirects, markup in
names, a long event list, outcomes a test cannot cheaply provoke)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

# (method, path without query) -> (status, JSON body or None, extra headers)
Answers = dict[tuple[str, str], tuple[int, Any, dict[str, str]]]


@contextlib.contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port; yields its base URL."""
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def scripted_app(answers: Answers, seen: list[tuple[str, str, dict[str, str]]]) -> Iterator[str]:
    """Answers each (method, path) as scripted (404 otherwise) and records every request."""

    class Scripted(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            seen.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
            status, body, headers = answers.get((self.command, path), (404, None, {}))
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            return None

    with loopback_server(Scripted) as url:
        yield url
