"""Cold start: importing and indexing the app in a fresh interpreter (what the Python worker does
when an instance starts) leaves out the modules the app defers to its first requests, so a later
top-level import cannot silently put them back on every cold start (bench/cold_start_bench.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from bench.cold_start_bench import APP_INSIGHTS_SETTING, CONFIG, DEFERRED
from tests.structure.import_graph import REPO_ROOT

# Loaded at start only when Application Insights is configured (telemetry.configure()).
TELEMETRY_DISTRO = "azure.monitor.opentelemetry"
PROBE = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)  # what some module might import at its top
import function_app
print(json.dumps({"file": function_app.__file__, "functions": len(function_app.app.get_functions()),
                  "loaded": sorted(sys.modules)}))
"""


def loaded_by_the_app(*imported_first: str) -> set[str]:
    """The modules loaded once ``function_app`` is imported and indexed in a fresh interpreter
    from this checkout (after ``imported_first``), without Application Insights configured."""
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": CONFIG}
    for name in (APP_INSIGHTS_SETTING, "BACKUPCHAIN_CONFIG", "PYTHONPATH"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *imported_first],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["file"] == str(REPO_ROOT / "function_app.py")  # this checkout, not the editable install's
    assert result["functions"] > 0
    return set(result["loaded"])


def test_every_deferred_module_is_installed() -> None:
    # A misspelt or uninstalled name would never be found imported.
    assert [name for name in (*DEFERRED, TELEMETRY_DISTRO) if importlib.util.find_spec(name) is None] == []


def test_importing_the_app_leaves_the_deferred_modules_out() -> None:
    loaded = loaded_by_the_app()
    assert set(DEFERRED) & loaded == set()
    assert TELEMETRY_DISTRO not in loaded


def test_a_deferred_module_imported_at_the_top_is_caught() -> None:
    assert set(DEFERRED) & loaded_by_the_app("croniter", "azure.eventgrid") == {"croniter", "azure.eventgrid"}
