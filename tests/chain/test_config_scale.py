"""A chain configuration of any documented size loads (docs/configuration.md).

5,000 VMs per target is the documented maximum. Such a configuration is ~650 KB of JSON: through
the ``BACKUPCHAIN_CONFIG_JSON`` environment variable Linux refuses to start the process at all
(one environment string is at most MAX_ARG_STRLEN = 128 KiB), so the app reads it from a file
(``BACKUPCHAIN_CONFIG``), which a real devhost start shows for 5,000 and 20,000 VMs.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_chain.config import CONFIG_JSON_SETTING, CONFIG_SETTING, MAX_ENV_VALUE_BYTES, parse_config_text
from demo.stack import REPO
from tests.support.devhost_harness import DevHostProcess

PREFIX = "/subscriptions/00000000-0000-0000-0000-0000000000c7/resourceGroups"
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MAX_ARG_STRLEN is Linux's limit")


def big_config(vms: int, name: str = "big") -> dict[str, Any]:
    """One chain over ``vms`` VMs, 5,000 (the per-target maximum) per vault, 40 resource groups."""
    targets = []
    for start in range(0, vms, 5000):
        vault = f"{PREFIX}/rg-backup/providers/Microsoft.RecoveryServices/vaults/v{start // 5000}"
        ids = [
            f"{PREFIX}/rg-app-{i % 40:02d}/providers/Microsoft.Compute/virtualMachines/vm{i:05d}"
            for i in range(start, min(vms, start + 5000))
        ]
        targets.append({"vaultId": vault, "vms": ids})
    last = targets[-1]["vms"][-1]
    return {"chains": [{"name": name, "targets": targets, "maxParallel": 50}], "gc": {"vms": [last]}}


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (CONFIG_SETTING, CONFIG_JSON_SETTING)}
    return {**env, **settings}


@LINUX
def test_linux_refuses_one_environment_variable_over_128_kib() -> None:
    """The limit itself: a value of MAX_ENV_VALUE_BYTES starts a process, one byte more does not."""
    ok = subprocess.run([sys.executable, "-c", "pass"], env=_env(**{CONFIG_JSON_SETTING: "x" * MAX_ENV_VALUE_BYTES}))
    assert ok.returncode == 0
    with pytest.raises(OSError) as refused:
        subprocess.run(
            [sys.executable, "-c", "pass"], env=_env(**{CONFIG_JSON_SETTING: "x" * (MAX_ENV_VALUE_BYTES + 1)})
        )
    assert refused.value.errno == errno.E2BIG  # "[Errno 7] Argument list too long", as measured in Azure


@LINUX
def test_a_5000_vm_configuration_cannot_be_an_environment_variable(tmp_path: Path) -> None:
    text = json.dumps(big_config(5000))
    assert len(parse_config_text(text).chains[0].vm_ids()) == 5000  # valid: the schema allows it
    assert len(text.encode()) > MAX_ENV_VALUE_BYTES
    process = DevHostProcess(REPO, tmp_path / "state" / "state.db", tmp_path / "marks", env={CONFIG_JSON_SETTING: text})
    with pytest.raises(OSError) as refused:  # the host process itself cannot be started
        process.start()
    assert refused.value.errno == errno.E2BIG


def test_both_settings_stop_the_app_naming_both(tmp_path: Path) -> None:
    (tmp_path / "chains.json").write_text(json.dumps(big_config(3)))
    env = _env(**{CONFIG_SETTING: str(tmp_path / "chains.json"), CONFIG_JSON_SETTING: json.dumps(big_config(3))})
    out = subprocess.run(
        [sys.executable, "-c", "import function_app"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert f"both {CONFIG_SETTING}" in out.stderr and f"{CONFIG_JSON_SETTING} are set; set only one" in out.stderr


@pytest.fixture(params=[5000, 20000], ids=["5000-vms", "20000-vms"])
def large_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, DevHostProcess]]:
    vms = int(request.param)
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(big_config(vms)))
    assert path.stat().st_size > MAX_ENV_VALUE_BYTES * 4
    process = DevHostProcess(
        REPO,
        tmp_path / "state" / "state.db",
        tmp_path / "marks",
        # two app worker processes, each loading the file, as Azure's worker processes do
        env={
            CONFIG_SETTING: str(path),
            "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
            # nothing here may reach Azure: ARM and the topic are a closed loopback port
            "ARM_ENDPOINT": "http://127.0.0.1:9",
            "DOWNSTREAM_TOPIC_ENDPOINT": "http://127.0.0.1:9/api/events",
            "BACKUPCHAIN_CREDENTIAL": "local",
        },
    )
    saved = os.environ.pop(CONFIG_JSON_SETTING, None)  # the harness passes the test's environment on
    try:
        yield vms, process.start()
    finally:
        process.stop(kill=True)
        if saved is not None:
            os.environ[CONFIG_JSON_SETTING] = saved


def test_a_large_configuration_loads_from_the_file_on_a_real_start(large_app: tuple[int, DevHostProcess]) -> None:
    vms, host = large_app
    listed = host.call("GET", "/api/chains/big/runs")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"chain": "big", "runs": []}
    assert host.call("GET", "/api/chains/not-configured/runs").status_code == 404
    # the whole file was read: the last VM (gc.vms names it) is there, in the last vault
    gc = host.call("GET", "/api/gc")
    assert gc.status_code == 200, gc.text
    [entry] = gc.json()["vms"]
    assert entry["vmId"].endswith(f"/virtualMachines/vm{vms - 1:05d}")
    assert entry["vaultId"].endswith(f"/vaults/v{(vms - 1) // 5000}")
