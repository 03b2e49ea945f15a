"""The app's CA bundle does not hold the emulators' CA (REQUESTS_CA_BUNDLE points at the public
bundle requests ships): a real TLS handshake fails against both emulators. The run must say so
itself: the VM ends failed with errorCode TlsCertificateNotTrusted at once (no retries of a
handshake that cannot heal), the kept events name the endpoint and REQUESTS_CA_BUNDLE, and the
log holds one ERROR per endpoint, no stack trace."""

from __future__ import annotations

from pathlib import Path

import certifi

from demo.stack import Stack
from harness.chain_stack import DEFAULT_START, chain, scenario, vm


def test_untrusted_emulator_certificate_fails_the_vm_with_a_named_endpoint(tmp_path: Path) -> None:
    stack = Stack.start(
        tmp_path,
        scenario([vm("app01")]),
        {"chains": [chain("nightly", ["app01"])]},
        clock_start=DEFAULT_START,
        extra_env={"REQUESTS_CA_BUNDLE": certifi.where()},
    )
    try:
        assert stack.api("POST", "chains/nightly/runs", {"runId": "r1"}).status_code == 202
        # One step past the upstream grace is all it takes: the failure is final, not retried.
        run = stack.run_until(
            lambda: (r := stack.api("GET", "chains/nightly/runs/r1").json())["runtimeStatus"] == "Completed" and r,
            step=30,
            limit=120,
            what="run r1 to end",
        )
        rs_endpoint = stack.services["recoveryservices"].url.rstrip("/")
        eg_endpoint = stack.services["eventgrid"].url.rstrip("/")
        log = (tmp_path / "devhost.log").read_text()
    finally:
        stack.stop()

    [vm_status] = run["vms"]
    assert (vm_status["phase"], vm_status["errorCode"]) == ("failed", "TlsCertificateNotTrusted")
    assert run["outcome"] == "completedWithFailures"
    # The run's result carries the message: the endpoint and the fix, not a stack trace.
    [reported] = run["output"]["vms"]
    assert reported["errorCode"] == "TlsCertificateNotTrusted"
    assert reported["message"].startswith(f"TLS certificate of {rs_endpoint} not trusted ("), reported
    assert "set REQUESTS_CA_BUNDLE" in reported["message"]
    # The downstream topic is behind the same untrusted CA: the run's first event is kept with the
    # reason (later ones queue behind it).
    first = run["pendingDelivery"][0]
    assert first["type"] == "BackupChain.ChainStarted", run["pendingDelivery"]
    assert first["reason"].startswith(f"TlsCertificateNotTrusted: TLS certificate of {eg_endpoint} not trusted")
    assert "REQUESTS_CA_BUNDLE" in first["reason"]
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert [line for line in errors if f"TLS certificate of {rs_endpoint} not trusted" in line], errors
    assert len([line for line in errors if rs_endpoint in line]) == 1, errors
    assert "Traceback" not in log
    assert "CERTIFICATE_VERIFY_FAILED" not in log
