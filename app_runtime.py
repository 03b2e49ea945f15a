"""What the app's client functions (the triggers, and the activities that hold a Durable client)
share at run time: the validated chain configuration (loaded once, at start-up), the app's own
identity as an event source, and the Durable runtime statuses that mean "still running"."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import azure.durable_functions as df

from backup_chain.config import ChainConfig, load_config

APP_DIR = Path(__file__).resolve().parent
APP_ID_SETTING = "APP_RESOURCE_ID"
ACTIVE = (
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.Suspended,
)


@lru_cache(maxsize=1)
def config() -> ChainConfig:
    return load_config(APP_DIR)


def source() -> str:
    """CloudEvents ``source`` for chain and GC events: the function app's resource id."""
    return os.environ.get(APP_ID_SETTING) or "/backup-chain/local"
