"""devhost's versioning rules and host.json parsing, against DTFx's own comparison table
(durabletask: VersionSettingsTests.TestVersionComparison) and the docs' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.settings import HostConfig, HostConfigError, load_host_json
from devhost.versioning import compare_versions, new_instance_version, violates_match_strategy


@pytest.mark.parametrize(
    ("source", "other", "sign"),
    [
        ("1.0.0", "1.0.0", 0),
        ("1.1.0", "1.0.0", 1),
        ("1.0.0", "1.1.0", -1),
        ("1", "1", 0),
        ("2", "1", 1),
        ("1", "2", -1),
        ("", "1", -1),
        ("1", "", 1),
        ("", "", 0),
        (None, "", 0),
        ("10.0", "9.0", 1),  # numeric, where a string comparison would say the opposite
        ("1.0", "1.0.0", -1),  # System.Version: a missing build number is lower than 0
        ("V2-beta", "v2-BETA", 0),  # no System.Version: ordinal, ignoring case
    ],
)
def test_compare_versions_follows_dtfx(source: str | None, other: str | None, sign: int) -> None:
    result = compare_versions(source, other)
    assert (result > 0) - (result < 0) == sign


def test_match_strategies() -> None:
    current = HostConfig(default_version="2.0")
    assert not violates_match_strategy("1.5", current) and not violates_match_strategy("2.0", current)
    assert violates_match_strategy("2.1", current)
    assert not violates_match_strategy(None, current)  # unversioned instances are older
    strict = HostConfig(default_version="2.0", version_match_strategy="Strict")
    assert violates_match_strategy("1.5", strict) and not violates_match_strategy("2.0", strict)
    assert not violates_match_strategy("", HostConfig(version_match_strategy="Strict"))  # null == empty
    assert not violates_match_strategy("99", HostConfig(default_version="1", version_match_strategy="None"))


def test_new_instances_take_the_explicit_version_else_the_default() -> None:
    assert new_instance_version("0.9", HostConfig(default_version="1.0")) == "0.9"
    assert new_instance_version(None, HostConfig(default_version="1.0")) == "1.0"
    assert new_instance_version(None, HostConfig()) is None


def _load(tmp_path: Path, durable_task: dict[str, object]) -> HostConfig:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": durable_task}}))
    return load_host_json(tmp_path)


def test_host_json_versioning_defaults_and_case_insensitive_names(tmp_path: Path) -> None:
    defaults = _load(tmp_path, {})
    assert (defaults.default_version, defaults.version_match_strategy, defaults.version_failure_strategy) == (
        None,
        "CurrentOrOlder",
        "Reject",
    )
    chosen = _load(
        tmp_path, {"defaultVersion": "3.1", "versionMatchStrategy": "strict", "versionFailureStrategy": "FAIL"}
    )
    assert (chosen.default_version, chosen.version_match_strategy, chosen.version_failure_strategy) == (
        "3.1",
        "Strict",
        "Fail",
    )
    assert _load(tmp_path, {"defaultVersion": None}).default_version is None


@pytest.mark.parametrize(
    ("durable_task", "named"),
    [
        ({"versionMatchStrategy": "Newest"}, "extensions.durableTask.versionMatchStrategy"),
        ({"versionFailureStrategy": "Retry"}, "extensions.durableTask.versionFailureStrategy"),
        ({"versionFailureStrategy": 1}, "extensions.durableTask.versionFailureStrategy"),
        ({"defaultVersion": 2}, "extensions.durableTask.defaultVersion"),
    ],
)
def test_bad_versioning_settings_name_the_key(tmp_path: Path, durable_task: dict[str, object], named: str) -> None:
    with pytest.raises(HostConfigError, match=named.replace(".", r"\.")):
        _load(tmp_path, durable_task)
