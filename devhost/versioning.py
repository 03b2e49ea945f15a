"""Orchestration versioning as the Durable extension applies it: the version a new instance gets,
and whether this host may run an instance of a given version (host.json ``defaultVersion``,
``versionMatchStrategy``, ``versionFailureStrategy``)."""

from __future__ import annotations

import re

from devhost.settings import HostConfig

# DTFx fails a mismatched instance with FailureDetails("VersionMismatch", this message)
# (durabletask: TaskOrchestrationDispatcher.OnProcessWorkItemAsync).
MISMATCH_MESSAGE = "Orchestration version did not comply with Worker Versioning"
# Reject abandons the work item so another (newer) worker can take it; devhost is the only worker,
# so it looks again after this many (clock) seconds: short enough that a restart with a newer
# defaultVersion picks the instance up at once, long enough not to spin.
REJECT_RETRY_SECONDS = 5.0

_DOTNET_VERSION = re.compile(r"^\d+(?:\.\d+){1,3}$")
_INT32_MAX = 2**31 - 1


def _dotnet_version(text: str) -> tuple[int, ...] | None:
    """``System.Version.TryParse``: 2-4 numeric parts; missing build/revision compare as -1."""
    stripped = text.strip()
    if not _DOTNET_VERSION.match(stripped):
        return None
    parts = [int(p) for p in stripped.split(".")]
    if any(p > _INT32_MAX for p in parts):
        return None
    return tuple(parts + [-1] * (4 - len(parts)))


def compare_versions(source: str | None, other: str | None) -> int:
    """DTFx ``VersioningSettings.CompareVersions``: empty/null versions are equal and older than any
    defined one; two System.Version strings compare numerically, anything else case-insensitively."""
    source_empty = not (source or "").strip()
    other_empty = not (other or "").strip()
    if source_empty or other_empty:
        return (not source_empty) - (not other_empty)
    assert source is not None and other is not None
    parsed_source, parsed_other = _dotnet_version(source), _dotnet_version(other)
    if parsed_source is not None and parsed_other is not None:
        return (parsed_source > parsed_other) - (parsed_source < parsed_other)
    upper_source, upper_other = source.upper(), other.upper()
    return (upper_source > upper_other) - (upper_source < upper_other)


def new_instance_version(explicit: str | None, config: HostConfig) -> str | None:
    """An explicit version wins; otherwise the host's defaultVersion (docs: "Orchestration
    versioning" — new orchestrations and sub-orchestrations get defaultVersion)."""
    return explicit if explicit is not None else config.default_version


def violates_match_strategy(instance_version: str | None, config: HostConfig) -> bool:
    """Whether this host must not run an instance of ``instance_version``. Strict treats null and
    empty as the same version, per the docs' comparison rules (DTFx itself compares with ``!=``)."""
    if config.version_match_strategy == "Strict":
        return (instance_version or "") != (config.default_version or "")
    if config.version_match_strategy == "CurrentOrOlder":
        return compare_versions(instance_version, config.default_version) > 0
    return False
