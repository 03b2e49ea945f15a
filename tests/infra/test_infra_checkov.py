"""checkov passes on infra/ with no unexplained and no unneeded skips.

checkov pins packaging<24 and pycep-parser==0.5.1, which conflict with pytest 9 and pycep-parser 0.7.1
in .venv, so it lives in its own venv, .venv-checkov/, created here on first use from
checkov-requirements.txt (a full lock; needs PyPI once, then runs offline). checkov runs with
--skip-download so it never calls out to Prisma Cloud.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = Path(__file__).with_name("checkov-requirements.txt")
VENV = REPO_ROOT / ".venv-checkov"
SKIP_COMMENT = re.compile(r"^\s*//\s*checkov:skip=([A-Z0-9_]+):(.*)$")


def _checkov() -> Path:
    exe = VENV / ("Scripts/checkov.cmd" if os.name == "nt" else "bin/checkov")
    stamp = VENV / ".lock-sha256"
    want = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    VENV.parent.mkdir(exist_ok=True)
    with open(REPO_ROOT / ".venv-checkov.lock", "w") as guard:  # xdist workers install once
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (exe.exists() and stamp.exists() and stamp.read_text() == want):
            shutil.rmtree(VENV, ignore_errors=True)
            venv.EnvBuilder(with_pip=True).create(VENV)
            py = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
            subprocess.run(
                [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(LOCK)],
                check=True,
                timeout=280,
            )
            stamp.write_text(want)
    return exe


def _run_checkov(directory: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    proc = subprocess.run(
        [str(_checkov()), "-d", str(directory), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return _run_checkov(REPO_ROOT / "infra")


def _skip_comments() -> dict[str, list[tuple[str, int, str]]]:
    found: dict[str, list[tuple[str, int, str]]] = {}
    for path in sorted((REPO_ROOT / "infra").rglob("*.bicep")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP_COMMENT.match(line)
            if match:
                found.setdefault(match.group(1), []).append((path.name, lineno, match.group(2).strip()))
            else:
                assert "checkov:skip" not in line, f"{path.name}:{lineno}: malformed skip comment"
    return found


def test_checkov_passes(report: dict[str, Any]) -> None:
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] > 10, summary  # it really read the Bicep
    assert summary["passed"] > 10, summary
    assert not failed, "checkov failed:\n" + "\n".join(failed)


def test_every_skip_is_explained(report: dict[str, Any]) -> None:
    comments = _skip_comments()
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert check["check_id"] in comments, check["check_id"]
        assert len(reason) >= 40 and reason != "No comment provided", f"{check['check_id']}: reason too thin"
    for check_id, places in comments.items():
        for name, lineno, reason in places:
            assert len(reason) >= 40, f"{name}:{lineno} {check_id}: say why"


def test_every_skip_is_needed(tmp_path: Path, report: dict[str, Any]) -> None:
    """Without the skip comments, exactly the skipped checks fail: no skip hides nothing."""
    stripped = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", stripped)
    for path in stripped.rglob("*.bicep"):
        path.write_text("".join(ln for ln in path.read_text().splitlines(True) if not SKIP_COMMENT.match(ln)))
    bare = _run_checkov(stripped)
    failing = {(c["check_id"], c["resource"]) for c in bare["results"]["failed_checks"]}
    skipped = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert failing == skipped


if __name__ == "__main__":  # print the report: python tests/infra/test_infra_checkov.py
    json.dump(_run_checkov(REPO_ROOT / "infra")["summary"], sys.stdout, indent=1)
