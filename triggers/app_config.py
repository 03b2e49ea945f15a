"""Process-wide settings of the client functions: the validated chain configuration (loaded
once, at start-up) and the app's own identity as an event source."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from backup_chain.config import ChainConfig, load_config

APP_DIR = Path(__file__).resolve().parent.parent
APP_ID_SETTING = "APP_RESOURCE_ID"


@lru_cache(maxsize=1)
def config() -> ChainConfig:
    return load_config(APP_DIR)


def source() -> str:
    """CloudEvents ``source`` for chain and GC events: the function app's resource id."""
    return os.environ.get(APP_ID_SETTING) or "/backup-chain/local"
