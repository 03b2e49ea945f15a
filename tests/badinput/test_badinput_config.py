"""Bad chain configurations: hypothesis mutations of a valid configuration
(wrong types, missing required fields, unknown keys, bad resource ids, duplicate VMs, bad schedules,
time zones and gc sections) and hostile files. Loading raises ``ConfigError`` and nothing else, and
its message names the field path of what is wrong, e.g. ``chains[0].targets[1].vaultId: ...``.
Pure and in-process, plus one devhost start-up in a subprocess that must fail naming the field."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from backup_chain.config import (
    CONFIG_JSON_SETTING,
    CONFIG_SETTING,
    ConfigError,
    load_config,
    parse_config,
    parse_config_text,
)
from backup_chain.text import is_unicode
from backup_chain.timezones import known
from demo.stack import REPO
from tests.badinput.support import PURE, hostile_text, json_values
from tests.support.resource_ids import OTHER_SUB, SUB, vault, vm

VALID: dict[str, Any] = {
    "eventTypePrefix": "BackupChain.",
    "chains": [
        {
            "name": "nightly-etl",
            "upstream": {
                "eventType": "Contoso.Etl.JobFinished",
                "subject": "/jobs/nightly-etl",
                "timeout": "PT6H",
                "onFailure": "skip",
                "onTimeout": "end",
            },
            "window": "0 0 1 * * *",
            "targets": [
                {"vaultId": vault("v1"), "vms": [vm("app01"), vm("app02")]},
                {"vaultId": vault("v2"), "vms": [vm("app03")]},
            ],
            "retainDays": 30,
            "maxParallel": 10,
            "staggerSeconds": 2.0,
            "monitorTransfer": True,
            "snapshotMinutes": [5, 9],
        },
        {"name": "adhoc", "targets": [{"vaultId": vault("v1"), "vms": [vm("app04")]}]},
    ],
    "gc": {
        "mode": "weekend-window",
        "day": "Saturday",
        "at": "00:00",
        "timeZone": "Asia/Tokyo",
        "windowHours": 48,
        "vms": [vm("app01"), vm("app04")],
        "policy": "weekly",
        "nearLimitThreshold": 15,
        "remediate": False,
        "enforce": True,
        "maxParallel": 10,
        "overlap": "delay",
    },
    "polling": {"shared": True, "readsPerMinute": 900, "tickSeconds": 5.0},
    "delivery": {"retryFor": "PT24H", "firstBackoff": "PT10S", "maxBackoff": "PT10M"},
}

# Every field of VALID with the JSON kind it takes. Paths are tuples of keys and indexes.
Path_ = tuple[str | int, ...]
STR, OPT_STR, INT, FLOAT, BOOL, LIST, OPT_LIST, OBJ, OPT_OBJ = (
    "str",
    "str|null",
    "int",
    "float",
    "bool",
    "list",
    "list|null",
    "object",
    "object|null",
)
FIELDS: dict[Path_, str] = {
    ("eventTypePrefix",): STR,
    ("chains",): LIST,
    ("gc",): OPT_OBJ,
    **{
        ("gc", k): kind
        for k, kind in {
            "mode": STR,
            "day": STR,
            "at": STR,
            "timeZone": STR,
            "windowHours": INT,
            "vms": OPT_LIST,
            "policy": OPT_STR,
            "nearLimitThreshold": INT,
            "remediate": BOOL,
            "enforce": BOOL,
            "maxParallel": INT,
            "overlap": STR,
        }.items()
    },
    ("gc", "vms", 0): STR,
    ("delivery",): OBJ,
    ("delivery", "retryFor"): STR,
    ("delivery", "firstBackoff"): STR,
    ("delivery", "maxBackoff"): STR,
    ("polling",): OBJ,
    ("polling", "shared"): BOOL,
    ("polling", "readsPerMinute"): INT,
    ("polling", "tickSeconds"): FLOAT,
    ("chains", 1): OBJ,
    ("chains", 1, "name"): STR,
    ("chains", 1, "targets"): LIST,
    ("chains", 1, "targets", 0, "vms", 0): STR,
}
_CHAIN0: dict[str, str] = {
    "name": STR,
    "upstream": OPT_OBJ,
    "window": OPT_STR,
    "targets": LIST,
    "retainDays": INT,
    "maxParallel": INT,
    "staggerSeconds": FLOAT,
    "monitorTransfer": BOOL,
    "snapshotMinutes": LIST,
}
FIELDS.update({("chains", 0, k): kind for k, kind in _CHAIN0.items()})
FIELDS.update({("chains", 0, "snapshotMinutes", i): FLOAT for i in (0, 1)})
FIELDS.update(
    {
        ("chains", 0, "upstream", k): kind
        for k, kind in {
            "eventType": STR,
            "subject": OPT_STR,
            "timeout": STR,
            "onFailure": STR,
            "onTimeout": STR,
        }.items()
    }
)
for _t, _n in ((0, 2), (1, 1)):
    FIELDS[("chains", 0, "targets", _t)] = OBJ
    FIELDS[("chains", 0, "targets", _t, "vaultId")] = STR
    FIELDS[("chains", 0, "targets", _t, "vms")] = LIST
    FIELDS.update({("chains", 0, "targets", _t, "vms", i): STR for i in range(_n)})
REQUIRED = [
    ("chains",),
    ("chains", 0, "name"),
    ("chains", 0, "targets"),
    ("chains", 0, "targets", 1, "vaultId"),
    ("chains", 0, "targets", 0, "vms"),
    ("chains", 0, "upstream", "eventType"),
    ("chains", 1, "targets"),
]
OBJECTS = [
    (),
    ("chains", 0),
    ("chains", 1),
    ("chains", 0, "upstream"),
    ("chains", 0, "targets", 1),
    ("gc",),
    ("polling",),
]
KNOWN_KEYS = {str(p[-1]) for p in FIELDS if isinstance(p[-1], str)}


def field_path(path: Path_) -> str:
    """``("chains", 0, "targets", 1, "vaultId")`` -> ``chains[0].targets[1].vaultId``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True)
class Mutation:
    """A configuration with one thing wrong, and how its error must name it: one of ``names``,
    each a list of texts that must all be in the message."""

    data: Any
    names: tuple[tuple[str, ...], ...]
    what: str


def mutate(path: Path_, value: Any = None, *, delete: bool = False) -> Any:
    data = copy.deepcopy(VALID)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def at(path: Path_) -> tuple[tuple[str, ...], ...]:
    """Named at ``path`` itself or at an item of it (``snapshotMinutes[1]: is required``); an item
    of a list of VM ids may instead be named inside its list's message (``...vms: vms[1]: ...``)."""
    names: list[tuple[str, ...]] = [(f"{field_path(path)}: ",), (f"{field_path(path)}[",)]
    if isinstance(path[-1], int):
        names.append((f"{field_path(path[:-1])}: ", f"{path[-2]}[{path[-1]}]"))
    return tuple(names)


# --- wrong types -------------------------------------------------------------------------------
_JSON_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers() | st.sampled_from([0, 1, 10**30]),
    "float": st.floats() | st.sampled_from([30.0, 1.5, float("nan"), float("inf")]),
    "str": hostile_text | st.sampled_from(["30", "true", "false", "null", "[5, 9]"]),
    "list": st.lists(json_values, max_size=3),
    "object": st.dictionaries(hostile_text, json_values, max_size=3),
}
_ACCEPTS = {
    STR: {"str"},
    OPT_STR: {"str", "null"},
    INT: {"int"},
    FLOAT: {"int", "float"},
    BOOL: {"bool"},
    LIST: {"list"},
    OPT_LIST: {"list", "null"},
    OBJ: {"object"},
    OPT_OBJ: {"object", "null"},
}


def wrong_values(kind: str) -> st.SearchStrategy[Any]:
    """Values of every JSON type the field does not take (a float is no integer, 1 no boolean)."""
    return st.one_of([strategy for name, strategy in _JSON_KINDS.items() if name not in _ACCEPTS[kind]])


wrong_types = st.sampled_from(sorted(FIELDS, key=field_path)).flatmap(
    lambda path: wrong_values(FIELDS[path]).map(lambda v: Mutation(mutate(path, v), at(path), f"wrong type {v!r}"))
)
missing = st.sampled_from(REQUIRED).map(
    lambda path: Mutation(mutate(path, delete=True), ((f"{field_path(path)}: is required",),), "missing")
)


def _unknown(obj: Path_, key: str, value: Any) -> Mutation:
    data = copy.deepcopy(VALID)
    node: Any = data
    for part in obj:
        node = node[part]
    node[key] = value
    shown = key if key else '""'
    names: tuple[tuple[str, ...], ...] = ((f"{field_path((*obj, shown))}: is not a known setting",),)
    if not is_unicode(key):
        # pydantic reads no further than a key that is not Unicode text (a lone surrogate, which
        # only a "\\udXXX" escape in the file can write) and names the object holding it
        names = ((f"{field_path(obj) or '(top level)'}: ", "valid string"),)
    return Mutation(data, names, f"unknown key {key!r}")


unknown_keys = st.builds(
    _unknown, st.sampled_from(OBJECTS), hostile_text.filter(lambda k: k not in KNOWN_KEYS), json_values
)


# --- bad values of the right type --------------------------------------------------------------
def _is_zone(name: str) -> bool:
    return known(name)


def value_at(path: Path_, values: st.SearchStrategy[Any], what: str) -> st.SearchStrategy[Mutation]:
    return values.map(lambda v: Mutation(mutate(path, v), at(path), f"{what} {v!r}"))


C0: Path_ = ("chains", 0)
UP: Path_ = (*C0, "upstream")
VM_NAMES_AZURE_FORBIDS = ["app;01", "app 01", "app/01", "_app", "app.", "app-", "a" * 65, "app\u212a", "ap\u017f"]
bad_vm_ids = st.one_of(
    hostile_text,
    st.sampled_from(VM_NAMES_AZURE_FORBIDS).map(vm),
    st.just(vault("v1")),
    st.just(vm("app01").replace(SUB, "not-a-guid")),
    st.just(vm("app01").replace("resourceGroups/rg-app", "resourceGroups/rg.")),
)
bad_vault_ids = st.one_of(
    hostile_text,
    st.just(vm("app01")),
    st.sampled_from(["v", "1vault", "v_1", "v" * 51, "v\u212a", "vault;1"]).map(vault),
)
crons_that_are_not_six_fields = hostile_text.filter(lambda s: len(s.split()) != 6)
crons_that_never_fire = ["0 0 1 31 2 *", "0 0 0 30 2 *", "0 0 0 31 4,6,9,11 *"]  # valid fields, no such date
bad_crons = (
    crons_that_are_not_six_fields
    | st.sampled_from(
        ["0 0 25 * * *", "60 * * * * *", "* * * 32 * *", "0 0 1 * 13 *", "a b c d e f", "0 0 1 * * * *", "0 0 1 * *"]
    )
    | st.sampled_from(crons_that_never_fire)
)
bad_durations = st.one_of(
    hostile_text.filter(lambda s: not s.startswith("P")),
    st.sampled_from(["PT0S", "-PT1H", "P8D", "P1Y", "P1M", "PT6", "P", "PT", "P99999999999999999D", "PT1e9S"]),
    st.integers(min_value=8, max_value=10**30).map(lambda n: f"P{n}D"),
    st.integers(min_value=10**12, max_value=10**40).map(lambda n: f"PT{n}H"),
)
bad_values = st.one_of(
    value_at(
        ("eventTypePrefix",),
        hostile_text.filter(lambda s: re.fullmatch(r"[A-Za-z][A-Za-z0-9.]{0,63}", s) is None),
        "prefix",
    ),
    value_at(
        (*C0, "name"), hostile_text.filter(lambda s: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", s) is None), "name"
    ),
    value_at((*UP, "eventType"), st.sampled_from(["", "T" * 201]), "eventType"),
    value_at((*UP, "subject"), st.just("/s" * 501), "subject"),
    value_at((*UP, "timeout"), bad_durations, "timeout"),
    value_at((*UP, "onFailure"), hostile_text.filter(lambda s: s not in ("skip", "backup")), "onFailure"),
    value_at((*UP, "onTimeout"), hostile_text.filter(lambda s: s not in ("end", "backup")), "onTimeout"),
    value_at((*C0, "window"), bad_crons, "window"),
    value_at((*C0, "targets", 1, "vaultId"), bad_vault_ids, "vault id"),
    value_at((*C0, "targets", 0, "vms", 1), bad_vm_ids, "VM id"),
    value_at((*C0, "retainDays"), st.sampled_from([0, -1, 36501, 10**30]), "retainDays"),
    value_at((*C0, "maxParallel"), st.sampled_from([0, 201, -(10**30)]), "maxParallel"),
    value_at((*C0, "staggerSeconds"), st.sampled_from([-0.5, 600.5, 1e308, float("nan"), float("inf")]), "stagger"),
    value_at(
        (*C0, "snapshotMinutes"),
        st.sampled_from([[15, 5], [0, 5], [5, 1441], [5], [1, 2, 3], [], [float("nan"), 9], [-1, 5]]),
        "snapshotMinutes",
    ),
    value_at((*C0, "targets"), st.just([]), "no targets"),
    value_at((*C0, "targets", 0, "vms"), st.just([]), "no VMs"),
    value_at(("chains",), st.just([]), "no chains"),
    value_at(("gc", "mode"), hostile_text.filter(lambda s: s not in ("weekly-policy", "weekend-window")), "mode"),
    value_at(("gc", "day"), hostile_text | st.sampled_from(["saturday", "Sat", "Samstag"]), "day"),
    value_at(("gc", "at"), hostile_text | st.sampled_from(["24:00", "7:00", "07:60", "0700", "07:00:00"]), "at"),
    value_at(("gc", "timeZone"), hostile_text.filter(lambda s: not _is_zone(s)), "timeZone"),
    value_at(("gc", "windowHours"), st.sampled_from([23, 168, 0]), "windowHours"),
    value_at(("gc", "nearLimitThreshold"), st.sampled_from([0, 19]), "nearLimitThreshold"),
    value_at(("gc", "maxParallel"), st.sampled_from([0, 201]), "gc.maxParallel"),
    value_at(("gc", "overlap"), hostile_text.filter(lambda s: s not in ("refuse", "delay")), "overlap"),
    value_at(("delivery", "retryFor"), bad_durations, "retryFor"),
    value_at(("delivery", "firstBackoff"), bad_durations, "firstBackoff"),
    value_at(("delivery", "maxBackoff"), bad_durations, "maxBackoff"),
    value_at(("polling", "readsPerMinute"), st.sampled_from([5, 0, -1, 15001, 10**30]), "readsPerMinute"),
    value_at(("polling", "tickSeconds"), st.sampled_from([0.5, 60.5, float("nan"), float("inf")]), "tickSeconds"),
    st.builds(
        lambda v: Mutation(mutate(("gc", "vms"), [vm("app01"), v]), (("gc.vms: ", repr(v)[:30]),), "gc VM id"),
        bad_vm_ids,
    ),
)


# --- mistakes across fields --------------------------------------------------------------------
def _dup_in_target(name: str) -> Mutation:
    data = mutate(
        (*C0, "targets", 0, "vms"),
        [vm("app01"), vm("app02"), vm(name).upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")],
    )
    return Mutation(data, (("chains[0].targets[0].vms: ", "once"),), "duplicate VM in a target")


def _dup_across_targets(name: str) -> Mutation:
    data = mutate((*C0, "targets", 1, "vms"), [vm("app03"), vm(name)])
    return Mutation(data, (("chains[0]: ", "targets[1]", "targets[0]"),), "VM in two targets")


def _dup_chain_names(name: str) -> Mutation:
    data = copy.deepcopy(VALID)
    data["chains"][1]["name"] = name
    return Mutation(data, (("chains: ", "chains[0]", "chains[1]"),), "duplicate chain name")


across = st.one_of(
    st.sampled_from(["app01", "APP02"]).map(_dup_in_target),
    st.sampled_from(["app01", "App02"]).map(_dup_across_targets),
    st.sampled_from(["nightly-etl", "NIGHTLY-ETL", "Nightly-Etl"]).map(_dup_chain_names),
    st.just(
        Mutation(
            mutate((*C0, "targets", 0, "vms", 1), vm("app02", OTHER_SUB)),
            (("chains[0].targets[0]: ", "subscription"),),
            "VM of another subscription",
        )
    ),
    st.just(Mutation(mutate(UP, delete=True), (("chains[0]: ", "'window'", "'upstream'"),), "window, no upstream")),
    st.just(Mutation(mutate(("gc", "policy"), delete=True), (("gc: ", "'policy'"),), "window mode, no policy")),
    st.just(Mutation(mutate(("gc", "vms", 1), vm("stranger")), (("gc.vms[1]: ", "no chain"),), "gc VM in no chain")),
    st.sampled_from([vm("app01"), vm("app01").upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")]).map(
        lambda v: Mutation(mutate(("gc", "vms", 1), v), (("gc.vms: ", "vms[1]", "once"),), "gc VM listed twice")
    ),
    st.just(
        Mutation(
            mutate(("delivery",), {"firstBackoff": "PT20M", "maxBackoff": "PT10M"}),
            (("delivery: ", "firstBackoff", "maxBackoff"),),
            "delivery backoffs out of order",
        )
    ),
    st.builds(
        lambda v: Mutation(
            {**copy.deepcopy(VALID), "gc": {"mode": "weekly-policy", "remediate": True}}, (("gc: ", "'policy'"),), v
        ),
        st.just("remediate without a policy"),
    ),
)


def assert_names(message: str, mutation: Mutation) -> None:
    assert any(all(text in message for text in name) for name in mutation.names), (mutation.what, message)


# each kind of mistake equally often (a plain one_of would flatten the nested ones into ~40 branches)
mutations = st.sampled_from([wrong_types, missing, unknown_keys, bad_values, across]).flatmap(lambda kind: kind)


@settings(PURE, max_examples=300)  # a few milliseconds each
@given(mutations)
@example(Mutation(mutate((*C0, "retainDays"), True), at((*C0, "retainDays")), "a boolean for an integer"))
@example(Mutation(mutate((*C0, "monitorTransfer"), 0), at((*C0, "monitorTransfer")), "0 for a boolean"))
@example(Mutation(mutate((*C0, "maxParallel"), "10"), at((*C0, "maxParallel")), "a string for an integer"))
@example(Mutation(mutate((*UP, "timeout"), "P99999999999999D"), at((*UP, "timeout")), "a timeout too big for Python"))
@example(_unknown((), "", 1))
@example(Mutation(mutate(("gc", "vms", 1), vm("APP01")), (("gc.vms: ", "vms[1]", "once"),), "gc VM listed twice"))
@example(Mutation(mutate(("delivery", "retryFor"), "P8D"), at(("delivery", "retryFor")), "retryFor past 7 days"))
@example(Mutation(mutate(("gc", "overlap"), "Delay"), at(("gc", "overlap")), "overlap spelled otherwise"))
@example(_unknown((*C0,), "targets[0]", 1))
@example(Mutation(mutate((*C0, "window"), "0 0 1 31 2 *"), at((*C0, "window")), "a window on 31 February"))
def test_every_bad_configuration_is_a_config_error_naming_the_field(mutation: Mutation) -> None:
    event(mutation.what.split(" ")[0])
    with pytest.raises(ConfigError) as caught:
        parse_config(mutation.data, "chains.json")
    message = str(caught.value)
    assert message.startswith("chains.json: "), message
    assert_names(message, mutation)
    # the same through the JSON text the app reads (NaN/Infinity as Python's json writes them)
    with pytest.raises(ConfigError) as again:
        parse_config_text(json.dumps(mutation.data), "chains.json")
    assert str(again.value) == message


def test_the_base_configuration_is_valid() -> None:
    config = parse_config(VALID)
    assert [c.name for c in config.chains] == ["nightly-etl", "adhoc"]


# --- hostile files and settings ----------------------------------------------------------------
hostile_files = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"\xef\xbb\xbf",
            "\ufeff{}".encode("utf-16"),
            json.dumps(VALID).encode("utf-16"),
            json.dumps(VALID).encode("utf-32"),
            b"\xff\xfe\x00",
            b'{"chains": "\xff"}',
            b"[" * 100_000,
            b'{"chains": [' + b"{" * 50_000,
            b"\x00" * 64,
        ]
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@PURE
@given(hostile_files)
def test_hostile_configuration_files_are_config_errors_naming_the_file(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "chains.json"
    path.write_bytes(raw)
    saved = {k: os.environ.pop(k, None) for k in (CONFIG_JSON_SETTING, CONFIG_SETTING)}
    os.environ[CONFIG_SETTING] = str(path)
    try:
        load_config(path.parent)
    except ConfigError as err:
        assert str(err).startswith("chains.json: "), str(err)
    else:
        pytest.fail(f"{raw[:60]!r} loaded as a configuration")
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


@PURE
@given(st.text(max_size=200) | st.sampled_from(["\udcff", '{"chains": "\ud800"}', "\udcef\udcbb\udcbf{}"]))
@example("\udcff")
def test_inline_configuration_text_fails_only_with_config_error(text: str) -> None:
    """``BACKUPCHAIN_CONFIG_JSON`` holds what the environment holds: a non-UTF-8 byte in the
    setting reaches Python as a lone surrogate (``os.environ`` decodes with surrogateescape)."""
    try:
        parse_config_text(text, CONFIG_JSON_SETTING)
    except ConfigError as err:
        assert str(err).startswith(f"{CONFIG_JSON_SETTING}: ")


def test_devhost_refuses_to_start_with_a_bad_configuration_naming_the_field(tmp_path: Path) -> None:
    bad = copy.deepcopy(VALID)
    bad["chains"][0]["targets"][1]["vaultId"] = "/subscriptions/x/vaults/v2"
    bad["chains"][0]["retainDays"] = True
    env = {**os.environ, CONFIG_JSON_SETTING: json.dumps(bad)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "start",
            "--app-dir",
            str(REPO),
            "--port",
            "0",
            "--state",
            str(tmp_path / "state.db"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert out.stdout.strip() == ""  # it never announced itself as listening
    assert "chains[0].targets[1].vaultId: " in out.stderr, out.stderr[-2000:]
    assert "chains[0].retainDays: " in out.stderr, out.stderr[-2000:]
