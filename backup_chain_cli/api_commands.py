"""Sub-commands of ``backup-chain`` (being built)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add this module's sub-commands to ``commands`` (argparse sub-parsers)."""
    del commands


__all__ = ["argparse", "register"]
