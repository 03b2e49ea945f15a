"""devhost installs on its own: ``pip install ./devhost`` into a fresh virtual environment gives a
``devhost`` command that runs the sample app without the repository on its path.

Offline: the fresh environment gets its dependencies (what devhost/pyproject.toml declares, the
Durable SDK the sample app requires, and the wheel build tool) as links to the distributions this
environment already has, resolved from their declared requirements; so an import devhost uses but
does not declare fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.devhost_harness import DevHostProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = REPO_ROOT / "tests" / "devhost" / "apps" / "sample"
APP_REQUIREMENTS = ["azure-functions-durable"]  # what the sample app itself imports besides devhost's own
BUILD_REQUIREMENTS = ["wheel"]  # setuptools' bdist_wheel before setuptools 70.1


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` need, following their requirements (markers
    evaluated for this interpreter, no extras)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = _normalized(pending.pop())
        if name in found:
            continue
        dist = metadata.distribution(name)
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


def _link_site(dists: list[metadata.Distribution], site: Path) -> None:
    """A site directory holding links to each distribution's top-level files and metadata."""
    site.mkdir()
    for dist in dists:
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or (site / top).exists():
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                (site / top).symlink_to(source)


def _declared_dependencies() -> list[str]:
    """The names in devhost/pyproject.toml's ``dependencies`` list (tomllib is not in 3.10)."""
    text = (REPO_ROOT / "devhost" / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert block is not None, "devhost/pyproject.toml declares no dependencies list"
    return [Requirement(spec).name for spec in re.findall(r'"([^"]+)"', block.group(1))]


@pytest.mark.slow
def test_pip_install_devhost_gives_a_working_devhost_command(tmp_path: Path) -> None:
    # The repository's layout, without build litter in the working tree.
    source = tmp_path / "src"
    for package in ("devhost", "localclock"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
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
    _link_site(_closure(_declared_dependencies() + APP_REQUIREMENTS + BUILD_REQUIREMENTS), deps_site)
    (Path(purelib) / "deps.pth").write_text(f"{deps_site}\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide index or find-links
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", str(source / "devhost")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=80,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]

    where = subprocess.run(
        [str(python), "-c", "import json, devhost, localclock as c; print(json.dumps([devhost.__file__, c.__file__]))"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert all(path.startswith(purelib) for path in json.loads(where.stdout)), where.stdout
    shown = subprocess.run(
        [str(python), "-m", "pip", "show", "devhost"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "Version: 0.1.0" in shown
    requires = next(line for line in shown.splitlines() if line.startswith("Requires:"))
    assert sorted(requires.removeprefix("Requires:").strip().split(", ")) == sorted(_declared_dependencies())

    command = venv / "bin" / "devhost"
    host = DevHostProcess(SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks", program=[str(command)])
    host.env.update({"PYTHONPATH": ""})
    host.start()
    try:
        assert host.start_orchestration("chain", "installed-1", {"steps": 2}).status_code == 202
        status = host.wait_status("installed-1", timeout=30)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == [1, 2]
    finally:
        host.stop()
