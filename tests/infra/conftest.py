"""Shared fixtures for the static checks of infra/ (Bicep parsed with pycep-parser, no Azure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bicep() -> dict[str, dict[str, Any]]:
    """Every Bicep file under infra/, parsed, keyed by its path relative to infra/ (posix)."""
    parser = BicepParser()
    parsed: dict[str, dict[str, Any]] = {}
    for path in sorted(INFRA.rglob("*.bicep")):
        parsed[path.relative_to(INFRA).as_posix()] = dict(parser.parse(file_path=path))
    return parsed
