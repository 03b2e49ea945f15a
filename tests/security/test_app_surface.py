"""Security and cold-start properties of the app itself (docs/deploy.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from demo.stack import REPO, vault_id, vm_id
from harness.chain_stack import chain, running_stack, scenario, types_for, vm

SAMPLE_CONFIG = json.dumps({"chains": [{"name": "c1", "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("a")]}]}]})


def _import_report(extra_env: dict[str, str]) -> dict[str, object]:
    """Import function_app in a fresh interpreter and report what it loaded and registered."""
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import function_app\n"
        "funcs = function_app.app.get_functions()\n"
        "print(json.dumps({'seconds': time.perf_counter() - t,"
        " 'modules': sorted(m for m in sys.modules if m.startswith(('azure.mgmt', 'azure.eventgrid', 'azure.identity',"
        " 'azure.monitor', 'opentelemetry.sdk')))"
        ", 'http': [json.loads(f.get_function_json()) for f in funcs]}))\n"
    )
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": SAMPLE_CONFIG, **extra_env}
    env.pop(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None
    ) if "APPLICATIONINSIGHTS_CONNECTION_STRING" not in extra_env else None
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_every_http_route_but_the_event_schemas_needs_a_function_key_and_heavy_sdks_load_lazily() -> None:
    report = _import_report({})
    http = [b for f in report["http"] for b in f["bindings"] if b["type"] == "httpTrigger"]  # type: ignore[attr-defined]
    assert http, "the app has HTTP routes"
    # One route is anonymous: the published event schemas (public documents, GET only: triggers/schemas.py).
    anonymous = [b for b in http if b["authLevel"] != "FUNCTION"]
    assert [(b["authLevel"], b["route"], b["methods"]) for b in anonymous] == [
        ("ANONYMOUS", "schemas/events/{event_type}/{version}", ["GET"])
    ]
    # Azure SDK clients and telemetry are imported only by the activities that use them.
    assert report["modules"] == []


def test_a_broken_configuration_fails_start_up_naming_the_field() -> None:
    bad = json.dumps({"chains": [{"name": "c1", "targets": [{"vaultId": "nope", "vms": []}]}]})
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": bad}
    out = subprocess.run(
        [sys.executable, "-c", "import function_app"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert "chains[0].targets[0].vaultId" in out.stderr


def test_no_keys_or_tokens_in_logs_or_events(tmp_path: Path) -> None:
    with running_stack(tmp_path, scenario([vm("sec01")]), [chain("sec", ["sec01"])]) as stack:
        assert stack.api("POST", "chains/sec/runs", {"runId": "s1"}).status_code == 202
        stack.run_until(lambda: "ChainCompleted" in types_for(stack.downstream()), step=60, what="run")
        secrets = [v for k, v in stack.keys.items()] + ["local-emulator-token"]
        events = json.dumps(stack.downstream())
        log_lines = [
            line for line in (tmp_path / "devhost.log").read_text().splitlines() if "function key:" not in line
        ]  # devhost's own start banner prints the key
        text = "\n".join(log_lines)
        for secret in secrets:
            assert secret not in events
            assert secret not in text
        assert "Authorization': 'Bearer" not in text
