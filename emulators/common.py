"""Plumbing shared by the emulators: local TLS, serving, and the one-line start announcement."""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import trustme

from localclock.serving import serve

__all__ = ["announce", "make_tls", "serve"]


def make_tls(state_dir: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1/localhost signed by a local CA whose PEM is written to
    ``state_dir/ca.pem`` (point ``REQUESTS_CA_BUNDLE``/``connection_verify`` at it).

    The CA is kept across restarts so clients that trusted it keep working."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = state_dir / "ca.pem", state_dir / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca = trustme.CA.from_pem(ca_cert_path.read_bytes(), ca_key_path.read_bytes())
    else:
        ca = trustme.CA()
        ca.private_key_pem.write_to_path(str(ca_key_path))
        ca.cert_pem.write_to_path(str(ca_cert_path))
    server_cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context, ca_cert_path


def announce(**fields: object) -> None:
    """Print the single JSON start line that launchers (tests, demo, benchmarks) wait for."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
