"""``pip install -e .`` as ./dev runs it (offline: the venv's setuptools, no index) gives a working
``backup-chain`` command in a fresh venv, outside the repository, with exactly the dependencies
pyproject.toml declares."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.devhost.test_install import BUILD_REQUIREMENTS, _closure, _link_site

REPO_ROOT = Path(__file__).resolve().parents[2]


def _declared_dependencies() -> list[str]:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert block is not None, "pyproject.toml declares no dependencies list"
    return [Requirement(spec).name for spec in re.findall(r'"([^"]+)"', block.group(1))]


def test_pyproject_pins_what_the_requirements_pin() -> None:
    """pyproject pins the versions requirements*.txt pin (one version of each in the repository)."""
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO_ROOT / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                requirement = Requirement(line.split("#", 1)[0].strip())
                pins[requirement.name.lower()] = str(requirement.specifier)
    text = (REPO_ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert block is not None
    for spec in re.findall(r'"([^"]+)"', block.group(1)):
        requirement = Requirement(spec)
        assert str(requirement.specifier).startswith("=="), spec
        if requirement.name.lower() in pins:
            assert pins[requirement.name.lower()] == str(requirement.specifier), spec
    assert "pyproject.toml" in (REPO_ROOT / "dev").read_text().split("ensure_venv()", 1)[1].split("\n}", 1)[0]


@pytest.mark.slow
def test_pip_install_gives_a_working_backup_chain_command(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for package in ("backup_chain", "backup_chain_cli"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", source / "pyproject.toml")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps_site = tmp_path / "deps-site"
    _link_site(_closure(_declared_dependencies() + BUILD_REQUIREMENTS), deps_site)
    (Path(purelib) / "deps.pth").write_text(f"{deps_site}\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide index or find-links
    # ./dev's ensure_venv command
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", "--no-deps", "-e", "."],
        capture_output=True,
        text=True,
        env=env,
        cwd=source,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]

    config = tmp_path / "elsewhere" / "chains.json"
    config.parent.mkdir()
    shutil.copy(REPO_ROOT / "config" / "chains.json", config)
    out = subprocess.run(
        [str(venv / "bin" / "backup-chain"), "--json", "validate", "chains.json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["valid"] is True
    where = subprocess.run(
        [str(python), "-c", "import backup_chain_cli; print(backup_chain_cli.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        check=True,
    )
    assert where.stdout.strip().startswith(str(source)), where.stdout  # editable: the source tree itself
