"""Repository layout rules: one Python version everywhere it is stated, and every test folder a
package (so test modules are named by their path and support modules imported by package)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Folders under tests/ that are function apps devhost loads, not test packages.
APP_FOLDERS = ("tests/devhost/apps/",)


def _setting(text: str, key: str) -> str:
    """A ``key = "value"`` line of a TOML file (tomllib only exists from 3.11 on)."""
    match = re.search(rf'^{re.escape(key)} = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None, f"no {key} setting"
    return match.group(1)


def test_one_python_version_for_ruff_mypy_and_both_projects() -> None:
    root = (REPO_ROOT / "pyproject.toml").read_text()
    devhost = (REPO_ROOT / "devhost" / "pyproject.toml").read_text()
    minimum = _setting(root, "python_version")  # mypy
    assert _setting(root, "target-version") == "py" + minimum.replace(".", "")  # ruff
    assert _setting(root, "requires-python") == ">=" + minimum
    assert _setting(devhost, "requires-python") == ">=" + minimum


def test_azure_runs_the_app_on_a_version_it_supports() -> None:
    """infra deploys a Python the projects claim (Azure Functions 4 runs 3.10-3.13; azure-functions
    1.x, pinned in requirements.txt, is the line for 3.10-3.12: github.com/Azure/azure-functions-python-library)."""
    bicep = (REPO_ROOT / "infra" / "modules" / "functionapp.bicep").read_text()
    match = re.search(r"name: 'python'\s+version: '(\d+)\.(\d+)'", bicep)
    assert match is not None, "functionapp.bicep names no Python runtime version"
    deployed = (int(match.group(1)), int(match.group(2)))
    minimum = tuple(
        int(part) for part in _setting((REPO_ROOT / "pyproject.toml").read_text(), "python_version").split(".")
    )
    assert minimum <= deployed <= (3, 12)
    assert re.search(r"^azure-functions==1\.", (REPO_ROOT / "requirements.txt").read_text(), re.MULTILINE)


def test_every_test_folder_is_a_package() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "tests/*.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    folders = {str(Path(path).parent) for path in listed if not path.startswith(APP_FOLDERS)}
    assert sorted(f for f in folders if not (REPO_ROOT / f / "__init__.py").is_file()) == []
