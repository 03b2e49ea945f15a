"""The chain configuration (docs/configuration.md), validated with clear errors that name the
field and say how to fix it."""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import isodate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backup_chain.ids import CHAIN_NAME_PATTERN
from backup_chain.resource_ids import ResourceIdError, VaultId, VmId

CONFIG_SETTING = "BACKUPCHAIN_CONFIG"
CONFIG_JSON_SETTING = "BACKUPCHAIN_CONFIG_JSON"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# A file holds any size the chain schema allows (5,000 VMs per target, any number of targets: a
# 20,000-VM configuration is about 2.7 MB); the bound only catches a setting naming the wrong file.
MAX_CONFIG_BYTES = 32 * 1024 * 1024
# Linux refuses to start a process with one environment string ("NAME=value") over MAX_ARG_STRLEN,
# 32 pages = 128 KiB (execve(2)); about 950 VMs. The inline setting is for small configurations.
MAX_ENV_VALUE_BYTES = 128 * 1024 - len(CONFIG_JSON_SETTING) - 2
# Whether a window ever fires does not depend on when one looks (NCRONTAB has no year field): a
# fixed start keeps the check free of the clock. croniter gives up after 50 years without a match
# (its own max_years_between_matches), which the scheduler's next_window would hit too.
WINDOW_CHECK_FROM = datetime(2000, 1, 1, tzinfo=timezone.utc)
WINDOW_CHECK_YEARS = 50


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of a configuration: the field it is in (``chains[1].window``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ValueError):
    """The configuration is invalid; ``str()`` lists the problems with their field paths (the
    app's startup message) and ``problems`` every problem found, each on its own."""

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None):
        super().__init__(message)
        self.problems = problems if problems is not None else [ConfigProblem("(file)", message)]


class CheckError(ValueError):
    """A model's own check (across its fields) failed. ``about``: the fields (relative to the
    model) whose values it judged, so a check run on a default that replaced a bad field is known
    as no problem of its own; ``at``: where below the model the problem is (``("vms", 0)``)."""

    def __init__(self, message: str, about: tuple[str, ...] = (), at: tuple[int | str, ...] = ()):
        super().__init__(message)
        self.about = about
        self.at = at


class _Model(BaseModel):
    # strict: JSON types as written (``true`` is no retainDays, ``"10"`` no maxParallel, ``0`` no
    # monitorTransfer); lax pydantic would coerce them silently.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _duration_up_to_a_week(value: Any, why: str = "") -> timedelta:
    parsed = _duration(value)
    if parsed > timedelta(days=7):
        raise ValueError(f"must be at most 7 days (P7D){why}")
    return parsed


# AWS Backup requires a start window of at least 60 minutes (StartWindowMinutes, AWS Backup API
# reference). Both upper bounds keep each deadline one durable timer: the Python SDK splits timers
# beyond the extension's 6-day maximum into a LongTimerTask whose cancel() does not reach the
# running timer (azure-functions-durable-python issue #573).
START_WINDOW_BOUNDS = (timedelta(hours=1), timedelta(days=6))
SNAPSHOT_DEADLINE_BOUNDS = (timedelta(minutes=5), timedelta(days=1))


def _bounded_duration(value: Any, bounds: tuple[timedelta, timedelta], what: str) -> timedelta:
    parsed = _duration(value)
    low, high = bounds
    if not low <= parsed <= high:
        raise ValueError(
            f"{value!r} is out of range: a {what} must be from {isodate.duration_isoformat(low)} "
            f"to {isodate.duration_isoformat(high)}"
        )
    return parsed


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string such as 'PT6H' or 'PT30M'")
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError, OverflowError):  # OverflowError: 'P99999999999999D'
        raise ValueError(f"{value!r} is not an ISO 8601 duration; write e.g. 'PT6H' or 'PT30M'") from None
    if not isinstance(parsed, timedelta) or parsed <= timedelta(0):
        raise ValueError(f"{value!r} must be a positive duration in days/hours/minutes/seconds, e.g. 'PT6H'")
    return parsed


class Upstream(_Model):
    eventType: Annotated[str, Field(min_length=1, max_length=200)]
    subject: Annotated[str | None, Field(default=None, max_length=1000)] = None
    timeout: timedelta = timedelta(hours=6)
    onFailure: Literal["skip", "backup"] = "skip"
    onTimeout: Literal["end", "backup"] = "end"

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> timedelta:
        return _duration_up_to_a_week(value, "; a chain run waits for one upstream signal")

    def matches(self, event_type: str, subject: str | None) -> bool:
        """Event types compare case-insensitively (as Event Grid filters do); a subject ending in
        ``*`` is a prefix, otherwise subjects must be equal."""
        if event_type.lower() != self.eventType.lower():
            return False
        if self.subject is None:
            return True
        if self.subject.endswith("*"):
            return (subject or "").startswith(self.subject[:-1])
        return subject == self.subject


# learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftresources
RESOURCE_GROUP_NAME = re.compile(r"[-\w.()]{0,89}[-\w()]")
TAG_ANY = "*"  # a tag criterion with this value (or null) matches any value of the tag


class Select(_Model):
    """Which VMs a target chooses at run start (backup_chain/membership.py): every VM protected
    in the target's vault (``protectedInVault``, optionally only under ``policies``), and/or the
    VMs of ``resourceGroups`` / carrying ``tags`` (Azure Resource Graph). A VM matches when it
    matches every criterion given."""

    protectedInVault: bool = False
    policies: Annotated[list[Annotated[str, Field(min_length=1, max_length=150)]] | None, Field(min_length=1)] = None
    resourceGroups: Annotated[list[str] | None, Field(min_length=1, max_length=100)] = None
    tags: Annotated[dict[str, str | None] | None, Field(min_length=1, max_length=50)] = None

    @field_validator("resourceGroups")
    @classmethod
    def _groups(cls, values: list[str] | None) -> list[str] | None:
        for index, name in enumerate(values or []):
            if not RESOURCE_GROUP_NAME.fullmatch(name):
                raise ValueError(
                    f"resourceGroups[{index}]: {name!r} is not a resource group name (1-90 letters, digits, "
                    "'_', '-', '.', '(' or ')', not ending in '.')"
                )
        return values

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        # Azure tag names: up to 512 characters, none of < > % & \ ? / (learn.microsoft.com/azure/
        # azure-resource-manager/management/tag-resources#limitations); values up to 256.
        for name, tag_value in (value or {}).items():
            if not name or len(name) > 512 or any(c in name for c in "<>%&\\?/"):
                raise ValueError(
                    f"tag name {name!r} is not an Azure tag name (1-512 characters, none of < > % & \\ ? /)"
                )
            if tag_value is not None and len(tag_value) > 256:
                raise ValueError(f"tag {name!r}: a value is at most 256 characters")
            # A line break would end the KQL string literal of the Resource Graph query mid-value.
            if any(not c.isprintable() for c in name + (tag_value or "")):
                raise ValueError(f"tag {name!r}: names and values cannot hold control characters (line breaks, tabs)")
        return value

    @model_validator(mode="after")
    def _something_chosen(self) -> Select:
        if not (self.protectedInVault or self.resourceGroups or self.tags):
            raise CheckError(
                "chooses nothing: set protectedInVault true, or give resourceGroups or tags",
                about=("protectedInVault", "resourceGroups", "tags"),
            )
        if self.policies and not self.protectedInVault:
            raise CheckError(
                "'policies' narrows 'protectedInVault'; set protectedInVault true or remove policies",
                about=("policies", "protectedInVault"),
            )
        return self

    @property
    def uses_resource_graph(self) -> bool:
        return bool(self.resourceGroups or self.tags)


def _vm_list(values: list[str], field: str) -> list[str]:
    """Every id parsed (all bad ones reported at once), each listed once (case-insensitively)."""
    parsed, bad = [], []
    for index, value in enumerate(values):
        try:
            parsed.append(VmId.parse(value))
        except ResourceIdError as err:
            bad.append(f"{field}[{index}]: {err}")
    if bad:  # every bad id at once, not only the first
        raise ValueError("; ".join(bad))
    seen: set[str] = set()
    duplicates: set[str] = set()
    for key in (v.key for v in parsed):  # a set, not list.count(): 5,000 VMs a target
        (duplicates if key in seen else seen).add(key)
    if duplicates:
        raise ValueError(f"lists the same VM more than once: {min(duplicates)}; list each VM once")
    return [v.id for v in parsed]


class Target(_Model):
    vaultId: str
    vms: Annotated[list[str] | None, Field(min_length=1, max_length=5000)] = None
    select: Select | None = None
    exclude: Annotated[list[str] | None, Field(min_length=1, max_length=5000)] = None

    @field_validator("vaultId")
    @classmethod
    def _vault(cls, value: str) -> str:
        try:
            return VaultId.parse(value).id
        except ResourceIdError as err:
            raise ValueError(str(err)) from None

    @field_validator("vms")
    @classmethod
    def _vms(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _vm_list(values, "vms")

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _vm_list(values, "exclude")

    @model_validator(mode="after")
    def _chooses_vms(self) -> Target:
        if self.vms is None and self.select is None:
            raise CheckError(
                "is required: list the VM resource ids, or give 'select' (VMs chosen at each run's start)",
                about=("vms", "select"),
                at=("vms",),
            )
        if self.exclude is not None and self.select is None:
            raise CheckError(
                "'exclude' removes VMs that 'select' chose; list fewer 'vms' instead, or add a 'select'",
                about=("exclude", "select"),
            )
        return self

    @model_validator(mode="after")
    def _same_subscription(self) -> Target:
        vault = VaultId.parse(self.vaultId)
        for vm in self.vms or []:
            if VmId.parse(vm).subscription != vault.subscription:
                raise ValueError(
                    f"VM {vm} is in another subscription than vault {self.vaultId}; Azure Backup protects "
                    "VMs with a vault of the same subscription"
                )
        return self

    @property
    def explicit_vms(self) -> list[str]:
        return self.vms or []


class Chain(_Model):
    name: Annotated[str, Field(pattern=CHAIN_NAME_PATTERN)]
    upstream: Upstream | None = None
    window: str | None = None
    targets: Annotated[list[Target], Field(min_length=1)]
    retainDays: Annotated[int, Field(ge=1, le=36500)] = 30
    maxParallel: Annotated[int, Field(ge=1, le=200)] = 10
    staggerSeconds: Annotated[float, Field(ge=0, le=600)] = 2.0
    monitorTransfer: bool = True
    snapshotMinutes: tuple[float, float] = (5.0, 15.0)
    # Deadlines, after AWS Backup's start and completion windows (docs/configuration.md).
    startWindow: timedelta | None = None
    snapshotDeadline: timedelta | None = None

    @field_validator("startWindow", mode="before")
    @classmethod
    def _start_window(cls, value: Any) -> timedelta | None:
        return None if value is None else _bounded_duration(value, START_WINDOW_BOUNDS, "start window")

    @field_validator("snapshotDeadline", mode="before")
    @classmethod
    def _snapshot_deadline(cls, value: Any) -> timedelta | None:
        return None if value is None else _bounded_duration(value, SNAPSHOT_DEADLINE_BOUNDS, "snapshot deadline")

    # The chain's Linux VMs send snapshot beacons (docs/beacon.md): with shared polling their
    # snapshots are read only every BEACON_FALLBACK_SECONDS in the window, densely after a beacon.
    beacons: bool = False

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import CroniterBadDateError, croniter  # only a chain with a window needs it

        if len(value.split()) != 6 or not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError(
                f"{value!r} is not a six-field NCRONTAB expression "
                "'{second} {minute} {hour} {day} {month} {day-of-week}', e.g. '0 0 1 * * *' for 01:00 UTC daily"
            )
        try:
            croniter(
                value, WINDOW_CHECK_FROM, second_at_beginning=True, max_years_between_matches=WINDOW_CHECK_YEARS
            ).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(
                f"{value!r} never fires: no date matches its day and month (e.g. 31 February or 31 April) in "
                f"{WINDOW_CHECK_YEARS} years; pick a day that month has"
            ) from None
        return value

    @field_validator("snapshotMinutes", mode="before")
    @classmethod
    def _snapshot_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value  # JSON has arrays, not tuples

    @field_validator("snapshotMinutes")
    @classmethod
    def _snapshot(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high <= 24 * 60:
            raise ValueError("must be [low, high] minutes with 0 < low <= high, e.g. [5, 15]")
        return value

    @model_validator(mode="after")
    def _needs_upstream_for_window(self) -> Chain:
        if self.window and self.upstream is None:
            raise CheckError(
                "has a 'window' but no 'upstream': a window is when the chain waits for upstream; "
                "add an 'upstream' (the event to wait for) or remove 'window'",
                about=("window", "upstream"),
            )
        return self

    @model_validator(mode="after")
    def _each_vm_once(self) -> Chain:
        # One VM in two targets would start two VM backups under the same instance id.
        seen: dict[str, int] = {}
        for index, target in enumerate(self.targets):
            for vm in target.explicit_vms:
                first = seen.setdefault(vm.lower(), index)
                if first != index:
                    raise ValueError(
                        f"targets[{index}] lists VM {vm} that targets[{first}] already lists; a chain backs up "
                        "each VM once, with one vault: keep it in one target"
                    )
        return self

    def vm_ids(self) -> list[tuple[str, str]]:
        """(vault id, VM id) for every VM the targets list explicitly, in configuration order
        (VMs a ``select`` chooses are known only at run start: backup_chain/membership.py)."""
        return [(target.vaultId, vm) for target in self.targets for vm in target.explicit_vms]

    @property
    def selects(self) -> bool:
        """Whether any target chooses VMs at run start."""
        return any(target.select is not None for target in self.targets)

    def vault_of(self, vm_id: str) -> str | None:
        key = vm_id.lower()
        return next((vault for vault, vm in self.vm_ids() if vm.lower() == key), None)


class Gc(_Model):
    """``weekly-policy``: protection stays on with a weekly scheduled backup and a weekly check
    raises GcOverdue / RestorePointsNearLimit. ``weekend-window``: protection is stopped (data
    retained) between backups and resumed for ``windowHours`` every week so GC runs; chain
    backups resume it around themselves. ``enforce: false`` keeps the per-backup resume/stop
    but opens no weekly window (what causes UserErrorRpCollectionLimitReached; for comparison).
    Only VMs in ``vms`` (default: all) are GC's: chains leave the others' protection alone. In
    both modes an ad hoc backup that would overlap the policy's scheduled backup is refused or
    delayed until clear (``overlap``)."""

    mode: Literal["weekly-policy", "weekend-window"] = "weekly-policy"
    day: Literal[WEEKDAYS] = "Saturday"  # type: ignore[valid-type]
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "00:00"
    timeZone: str = "UTC"
    windowHours: Annotated[int, Field(ge=24, le=167)] = 48
    vms: list[str] | None = None
    policy: str | None = None
    nearLimitThreshold: Annotated[int, Field(ge=1, le=18)] = 15
    remediate: bool = False
    enforce: bool = True
    maxParallel: Annotated[int, Field(ge=1, le=200)] = 10
    # An ad hoc backup that would overlap the policy's scheduled backup: refuse it (BackupFailed
    # OverlapsScheduledBackup) or delay it until clear (BackupDelayed, then a durable timer).
    overlap: Literal["refuse", "delay"] = "refuse"

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from backup_chain.timezones import zone

        try:
            zone(value)
        except Exception:
            raise ValueError(
                f"{value!r} is not a known time zone; use an IANA name such as 'Asia/Tokyo' or a Windows zone id "
                "such as 'Tokyo Standard Time'"
            ) from None
        return value

    @field_validator("vms")
    @classmethod
    def _vms(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        parsed: dict[str, str] = {}
        for index, value in enumerate(values):
            try:
                vm = VmId.parse(value)
            except ResourceIdError as err:
                raise ValueError(str(err)) from None
            if vm.key in parsed:  # GC would resume and stop the same VM twice at once
                raise ValueError(f"vms[{index}] lists {vm.id} again (case-insensitively); list each VM once")
            parsed[vm.key] = vm.id
        return list(parsed.values())

    @model_validator(mode="after")
    def _policy_needed(self) -> Gc:
        if (self.mode == "weekend-window" or self.remediate) and not self.policy:
            raise CheckError(
                "needs 'policy' (the vault's backup policy name to resume protection with) when mode is "
                "'weekend-window' or remediate is true",
                about=("mode", "remediate", "policy"),
            )
        return self


class Polling(_Model):
    """How running backup jobs are read. ``shared``: one budgeted poller per vault reads every
    watched job (ARM read limits are per subscription); off: each backup polls its own job.
    ``readsPerMinute`` is the job-read budget per subscription, split evenly across the
    subscription's configured vaults (ARM allows about 1,500 reads a minute per subscription, and
    other tools share it). ``tickSeconds``: a poller reads its due jobs at most this often."""

    shared: bool = True
    readsPerMinute: Annotated[int, Field(ge=6, le=15000)] = 900
    tickSeconds: Annotated[float, Field(ge=1, le=60)] = 5.0


class Delivery(_Model):
    """Downstream delivery (docs/events.md). Events the topic does not accept at once are kept
    in the run's outbox; transient failures are retried with exponential backoff from
    ``firstBackoff`` up to ``maxBackoff`` between attempts, for ``retryFor`` (default 24 h, as long
    as Event Grid itself retries a delivery: eventTimeToLiveInMinutes 1440, and it does not retry
    400/401/403/413; learn.microsoft.com/azure/event-grid/delivery-and-retry), after which the
    events are kept as undelivered."""

    retryFor: timedelta = timedelta(hours=24)
    firstBackoff: timedelta = timedelta(seconds=10)
    maxBackoff: timedelta = timedelta(minutes=10)

    @field_validator("retryFor", "firstBackoff", "maxBackoff", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> timedelta:
        return _duration_up_to_a_week(value)

    @model_validator(mode="after")
    def _ordered(self) -> Delivery:
        if self.firstBackoff > self.maxBackoff:
            raise CheckError(
                "delivery.firstBackoff must not exceed delivery.maxBackoff", about=("firstBackoff", "maxBackoff")
            )
        return self


class ChainConfig(_Model):
    eventTypePrefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.]{0,63}$")] = "BackupChain."
    chains: Annotated[list[Chain], Field(min_length=1)]
    gc: Gc | None = None
    polling: Polling = Polling()
    delivery: Delivery = Delivery()

    def vault_ids(self) -> list[str]:
        """Every configured vault, once (first spelling kept)."""
        seen: dict[str, str] = {}
        for chain in self.chains:
            for target in chain.targets:  # a target that only selects has a vault too
                seen.setdefault(target.vaultId.lower(), target.vaultId)
        return list(seen.values())

    def vault_reads_per_minute(self, vault_id: str) -> float:
        """A vault's share of its subscription's job-read budget."""
        subscription = VaultId.parse(vault_id).subscription.lower()
        peers = [v for v in self.vault_ids() if VaultId.parse(v).subscription.lower() == subscription]
        return self.polling.readsPerMinute / max(1, len(peers))

    @field_validator("chains")
    @classmethod
    def _unique_names(cls, chains: list[Chain]) -> list[Chain]:
        # A field validator (not a model one) so the error names ``chains``, not the top level.
        names = [c.name.lower() for c in chains]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(
                    f"chains[{names.index(name)}] and chains[{index}] are both named {chains[index].name!r}; "
                    "chain names must be unique (case-insensitively): rename one of them"
                )
        return chains

    def chain(self, name: str) -> Chain | None:
        return next((c for c in self.chains if c.name.lower() == name.lower()), None)

    def gc_selections(self) -> list[dict[str, Any]]:
        """The chain targets with a ``select`` whose members GC covers at each check or window
        (every target's, unless ``gc.vms`` lists GC's VMs explicitly)."""
        if self.gc is None or self.gc.vms is not None:
            return []
        return [t.model_dump(mode="json") for chain in self.chains for t in chain.targets if t.select is not None]

    def gc_targets(self) -> list[tuple[str, str]]:
        """(vault id, VM id) of every explicitly listed VM under GC enforcement (default: every VM
        of any chain); the members of ``gc_selections`` are added when GC runs."""
        seen: dict[str, tuple[str, str]] = {}
        for chain in self.chains:
            for vault, vm in chain.vm_ids():
                seen.setdefault(vm.lower(), (vault, vm))
        if self.gc is None or self.gc.vms is None:
            return list(seen.values())
        return [seen[vm.lower()] for vm in self.gc.vms]

    @model_validator(mode="after")
    def _gc_vms_known(self) -> ChainConfig:
        if self.gc is not None and self.gc.vms is not None:
            known = {vm.lower() for chain in self.chains for _, vm in chain.vm_ids()}
            for index, vm in enumerate(self.gc.vms):
                if vm.lower() not in known:
                    raise CheckError(f"{vm} is in no chain; GC covers VMs that chains back up", at=("gc", "vms", index))
        return self

    @model_validator(mode="after")
    def _gc_keeps_policy_selections(self) -> ChainConfig:
        # GC (and a chain backup in weekend-window mode) resumes protection with gc.policy: a VM
        # chosen by another policy would leave the selection at its first resume, and no later
        # window would resume it again (GC stopped protection on a VM it no longer covers).
        gc = self.gc
        if gc is None or gc.vms is not None or not gc.policy or not (gc.mode == "weekend-window" or gc.remediate):
            return self
        for ci, chain in enumerate(self.chains):
            for ti, target in enumerate(chain.targets):
                policies = (target.select.policies if target.select else None) or []
                if policies and gc.policy.lower() not in {p.lower() for p in policies}:
                    raise CheckError(
                        f"GC resumes protection with policy {gc.policy!r}, which this selection does not choose; "
                        f"add {gc.policy!r} to policies, or list GC's VMs in gc.vms",
                        at=("chains", ci, "targets", ti, "select", "policies"),
                    )
        return self


def _path(loc: tuple[Any, ...], key: bool = False) -> str:
    """The field path of a pydantic error location; with ``key`` its last part is a key the
    user wrote (an unknown field), shown as written even when empty or bracketed."""
    out = ""
    for index, part in enumerate(loc):
        if key and index == len(loc) - 1:
            name = str(part) or '""'
            out += f".{name}" if out else name
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-plain") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _check_of(item: Any) -> CheckError | None:
    error = (item.get("ctx") or {}).get("error")
    return error if isinstance(error, CheckError) else None


def _problem(item: Any) -> ConfigProblem:
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        message = "is not a known setting; check its spelling against the documented fields"
    elif item["type"] == "missing":
        message = "is required"
    check = _check_of(item)
    loc = tuple(item["loc"]) + (check.at if check else ())
    return ConfigProblem(_path(loc, key=item["type"] == "extra_forbidden"), message)


def _judged_fields(item: Any) -> set[str]:
    """The paths of the fields a model's own check judged (none for a field's own error)."""
    check = _check_of(item)
    return {_path((*item["loc"], field)) for field in check.about} if check else set()


def _problems(error: ValidationError) -> list[ConfigProblem]:
    return [_problem(item) for item in error.errors()]


def describe(error: ValidationError) -> str:
    return "; ".join(str(problem) for problem in _problems(error))


REVEAL_ROUNDS = 5


def _child(node: Any, part: int | str) -> Any:
    """``node[part]`` of parsed JSON, or None where there is no such member."""
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _drop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the member at pydantic location ``loc`` from ``data``; whether there was one."""
    keys = [part for part in loc if isinstance(part, int) or ("[" not in part and "-" not in part)]
    if not keys or not isinstance(keys[-1], str):
        return False
    node: Any = data
    for part in keys[:-1]:
        node = _child(node, part)
    if isinstance(node, dict) and keys[-1] in node:
        del node[keys[-1]]
        return True
    return False


def _without_bad_fields(data: Any, error: ValidationError, set_aside: set[str]) -> tuple[Any, list[str]]:
    """A copy of ``data`` without the fields ``error`` names (those a default can replace), and
    their paths: pydantic runs a model's own checks (a window without upstream, a GC VM in no
    chain) only once all its fields are valid, so dropping the bad ones reveals those checks. A
    check that judged a default standing in for a field already ``set_aside`` loses the fields it
    judges too (it passes on their defaults), so the checks behind it show."""
    trimmed = copy.deepcopy(data)
    dropped = []
    for item in error.errors():
        check = _check_of(item)
        if check is not None and _judged_fields(item) & set_aside:
            for field in check.about:
                if _drop(trimmed, (*item["loc"], field)):
                    dropped.append(_path((*item["loc"], field)))
        elif item["type"] != "missing" and _drop(trimmed, tuple(item["loc"])):  # a required field: kept
            dropped.append(_path(tuple(item["loc"]), key=item["type"] == "extra_forbidden"))
    return trimmed, dropped


def config_problems(data: Any) -> list[ConfigProblem]:
    """Every problem of ``data`` (the parsed JSON), each with its field path; empty when valid.
    Beyond what one validation reports, checks hidden behind a bad field are run too."""
    try:
        ChainConfig.model_validate(data)
        return []
    except ValidationError as err:
        error = err
    found = _problems(error)
    hidden: set[str] = set()  # paths already reported or dropped: their "is required" is no news
    set_aside: set[str] = set()  # dropped fields: a check judging their default judges no one's value
    for _ in range(REVEAL_ROUNDS):
        data, dropped = _without_bad_fields(data, error, set_aside)
        hidden |= {p.path for p in found} | set(dropped)
        set_aside |= set(dropped)
        if not dropped:
            break
        try:
            ChainConfig.model_validate(data)
            break
        except ValidationError as err:
            error = err
        for item in error.errors():
            problem = _problem(item)
            if problem.path not in hidden and problem not in found and not _judged_fields(item) & set_aside:
                found.append(problem)
    return found


def parse_config(data: Any, source: str = "configuration") -> ChainConfig:
    try:
        return ChainConfig.model_validate(data)
    except ValidationError as err:
        problems = [ConfigProblem(p.path, p.message) for p in config_problems(data)]
        raise ConfigError(f"{source}: {describe(err)}", problems) from None


def parse_config_text(text: str, source: str = "configuration") -> ChainConfig:
    try:
        size = len(text.encode())
    except UnicodeEncodeError as err:  # os.environ keeps a non-UTF-8 byte as a lone surrogate
        raise ConfigError(
            f"{source}: not UTF-8 text (character {err.start + 1}); write the configuration as UTF-8"
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: larger than {MAX_CONFIG_BYTES} bytes; a chain configuration is far smaller, "
            "check that the setting names the chain configuration file"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply to be a chain configuration") from None
    return parse_config(data, source)


def config_source(app_dir: Path | None = None) -> tuple[str, Path | None]:
    """Where the configuration comes from: (``BACKUPCHAIN_CONFIG_JSON``, None) for the inline
    setting, else (``BACKUPCHAIN_CONFIG``, the file). Setting both is an error: which one wins
    would be a guess."""
    inline = os.environ.get(CONFIG_JSON_SETTING)
    named = os.environ.get(CONFIG_SETTING)
    if inline and named:
        raise ConfigError(
            f"both {CONFIG_SETTING} ({named}) and {CONFIG_JSON_SETTING} are set; set only one: "
            f"{CONFIG_SETTING} names the configuration file (any size), {CONFIG_JSON_SETTING} holds a small "
            "configuration inline"
        )
    if inline:
        return CONFIG_JSON_SETTING, None
    base = app_dir or Path(__file__).resolve().parent.parent
    path = Path(named or base / "chains.json")
    if not path.is_absolute():
        path = base / path
    return CONFIG_SETTING, path


def load_config_file(path: Path, setting: str = CONFIG_SETTING) -> ChainConfig:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"{setting}: cannot read {path} ({err.strerror}); point the app setting at the chain "
            "configuration file or set BACKUPCHAIN_CONFIG_JSON"
        ) from None
    return parse_config_bytes(raw, path.name)


def parse_config_bytes(raw: bytes, name: str) -> ChainConfig:
    """The configuration in the file ``name``'s bytes."""
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark, as some Windows editors write, is fine
    except UnicodeDecodeError as err:
        raise ConfigError(f"{name}: not UTF-8 text (byte {err.start + 1}); save the file as UTF-8") from None
    return parse_config_text(text, name)


def load_config(app_dir: Path | None = None) -> ChainConfig:
    """The configuration from ``BACKUPCHAIN_CONFIG_JSON`` (the JSON itself, small configurations)
    or the file named by ``BACKUPCHAIN_CONFIG`` (default ``chains.json`` beside the app; a relative
    path is relative to the app directory), never both."""
    setting, path = config_source(app_dir)
    if path is None:
        return parse_config_text(os.environ[CONFIG_JSON_SETTING], CONFIG_JSON_SETTING)
    return load_config_file(path, setting)
