"""Fuzzing the two pure parsers hostile input reaches first: the Azure
resource-id parser (``backup_chain/resource_ids.py``) and the upstream matcher the Event Grid
trigger uses (``Upstream.matches`` with the trigger's own ``_status``).

- The parsers raise nothing but ``ResourceIdError``, whatever they are given.
- Whatever they accept is made only of characters Azure allows, checked here independently of
  the parser's regular expressions: a subscription GUID in ASCII hex; a resource group of 1-90
  letters or digits as .NET's ``Char.IsLetterOrDigit`` sees them (Unicode categories L* and Nd),
  ``-``, ``_``, ``.``, ``(`` or ``)``, not ending in ``.``; a VM name of 1-64 ASCII letters,
  digits, ``_``, ``.`` or ``-`` that starts with a letter or digit and ends with neither ``.``
  nor ``-``; a vault name of 2-50 ASCII letters, digits or ``-`` starting with a letter.
- Valid ids round-trip in any case of their fixed parts: ``parse(text).id`` is canonical and
  parses to the same value, ``key`` is its lower case, and the derived container and protected
  item names split back into resource group and VM name.
- The matcher never raises for any event the trigger lets through, matches only the configured
  type (case-insensitively) and subject (exact, or prefix with ``*``), and reads the upstream
  outcome from any JSON ``data`` as exactly "Succeeded" or "Failed"."""

from __future__ import annotations

import random
import string
import unicodedata
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from backup_chain.config import Upstream
from backup_chain.resource_ids import ResourceIdError, VaultId, VmId
from backup_chain.text import is_unicode
from tests.badinput.support import PURE, hostile_text, json_values
from triggers.upstream import _status

SUB = "00000000-0000-0000-0000-0000000000aa"
VM_PATH = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
VAULT_PATH = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{name}"
ASCII_ALNUM = set(string.ascii_letters + string.digits)
LETTER_OR_DIGIT = {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"}  # .NET Char.IsLetterOrDigit


# --- what Azure allows, written out without regular expressions --------------------------------
def azure_allows_subscription(sub: str) -> bool:
    groups = sub.split("-")
    return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(c in string.hexdigits for g in groups for c in g)


def azure_allows_resource_group(rg: str) -> bool:
    return (
        1 <= len(rg) <= 90
        and not rg.endswith(".")
        and all(c in "-_.()" or unicodedata.category(c) in LETTER_OR_DIGIT for c in rg)
    )


def azure_allows_vm_name(name: str) -> bool:
    return (
        1 <= len(name) <= 64
        and all(c in ASCII_ALNUM or c in "_.-" for c in name)
        and name[0] in ASCII_ALNUM
        and name[-1] not in ".-"
    )


def azure_allows_vault_name(name: str) -> bool:
    return 2 <= len(name) <= 50 and all(c in ASCII_ALNUM or c == "-" for c in name) and name[0] in string.ascii_letters


# --- inputs ------------------------------------------------------------------------------------
# Characters that fold onto ASCII under case-insensitive matching, numerals that are no decimal
# digits, combining marks, full-width forms, separators, controls and path characters.
TRICKY = "\u212a\u017f\u0131\u0130\u00b2\u2167\u00bd\u0301\u203f\uff21\uff10\u0663\u00a0\u2028;/\\ .-_()\x00\n"
tricky_names = st.text(st.sampled_from(TRICKY) | st.sampled_from(sorted(ASCII_ALNUM)), min_size=1, max_size=12)
subscriptions = st.one_of(st.just(SUB), st.uuids().map(str), hostile_text, st.just(SUB.upper()))
ids_to_parse = st.one_of(
    hostile_text,
    st.builds(lambda s, rg, n: VM_PATH.format(sub=s, rg=rg, name=n), subscriptions, tricky_names, tricky_names),
    st.builds(lambda s, rg, n: VAULT_PATH.format(sub=s, rg=rg, name=n), subscriptions, tricky_names, tricky_names),
    st.builds(lambda rg, n: VM_PATH.format(sub=SUB, rg=rg, name=n), hostile_text, hostile_text),
)
not_text = st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(), max_size=2), json_values)


@PURE
@given(ids_to_parse | not_text)
@example(VM_PATH.format(sub=SUB, rg="rg", name="web\u212a01"))  # KELVIN SIGN folds onto "k"
@example(VM_PATH.format(sub=SUB, rg="rg", name="\u017fql01"))  # LATIN SMALL LETTER LONG S folds onto "s"
@example(VAULT_PATH.format(sub=SUB, rg="rg", name="v\u212a"))
@example(VM_PATH.format(sub=SUB, rg="rg\u00b2", name="app01"))  # SUPERSCRIPT TWO: a numeral, not a digit
@example(VM_PATH.format(sub=SUB, rg="rg\u2167", name="app01"))  # ROMAN NUMERAL EIGHT
def test_parsers_raise_only_their_error_and_accept_only_what_azure_allows(text: Any) -> None:
    for parser, allows_name in ((VmId.parse, azure_allows_vm_name), (VaultId.parse, azure_allows_vault_name)):
        try:
            parsed = parser(text)
        except ResourceIdError as err:
            assert "resource id" in str(err)
            continue
        assert azure_allows_subscription(parsed.subscription), parsed
        assert azure_allows_resource_group(parsed.resource_group), parsed
        assert allows_name(parsed.name), parsed
        assert parser(parsed.id) == parsed


# --- valid ids round-trip ----------------------------------------------------------------------
vm_names = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?", fullmatch=True)
vault_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{1,49}", fullmatch=True)
rg_names = st.text(
    st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Nd"], include_characters="-_.()"),
    min_size=1,
    max_size=90,
).filter(lambda rg: not rg.endswith("."))


# (a seeded random.Random: hypothesis' own randoms() draw every call through the engine, slowly)
seeds = st.integers(min_value=0, max_value=2**32).map(random.Random)


def recase(text: str, rnd: random.Random) -> str:
    """``text`` with its ASCII letters in a random mix of upper and lower case."""
    return "".join(c.swapcase() if c in string.ascii_letters and rnd.random() < 0.5 else c for c in text)


@PURE
@given(st.uuids().map(str), rg_names, vm_names, vault_names, seeds)
def test_valid_ids_round_trip_in_any_case(sub: str, rg: str, vm_name: str, vault_name: str, rnd: random.Random) -> None:
    for parser, kind, name in (
        (VmId.parse, "Microsoft.Compute/virtualMachines", vm_name),
        (VaultId.parse, "Microsoft.RecoveryServices/vaults", vault_name),
    ):
        text = "/".join(
            [
                "",
                recase("subscriptions", rnd),
                recase(sub, rnd),
                recase("resourceGroups", rnd),
                rg,
                recase("providers", rnd),
                recase(kind, rnd),
                name,
            ]
        )
        parsed = parser(text)
        assert (parsed.subscription, parsed.resource_group, parsed.name) == (sub.lower(), rg, name)
        assert parsed.id == f"/subscriptions/{sub.lower()}/resourceGroups/{rg}/providers/{kind}/{name}"
        assert parser(parsed.id) == parsed
        assert parsed.key == parsed.id.lower()
    vm = VmId.parse(VM_PATH.format(sub=sub, rg=rg, name=vm_name))
    assert vm.container_name.split(";") == ["iaasvmcontainer", "iaasvmcontainerv2", rg.lower(), vm_name.lower()]
    assert vm.protected_item_name.split(";") == ["vm", "iaasvmcontainerv2", rg.lower(), vm_name.lower()]


# --- the upstream matcher ----------------------------------------------------------------------
configured_types = st.text(min_size=1, max_size=30) | st.sampled_from(["Contoso.Etl.JobFinished", "a", "İ", "ß"])
# Configured strings are Unicode text (a configuration is UTF-8 JSON); events need not be.
configured_subjects = (
    st.none()
    | hostile_text.filter(lambda s: len(s) <= 1000 and is_unicode(s))
    | st.sampled_from(["*", "/jobs/*", "/jobs/\U0001f4a5*"])
)


@PURE
@given(configured_types, configured_subjects, hostile_text, st.none() | hostile_text)
@example("Contoso.Etl.JobFinished", "/jobs/*", "CONTOSO.ETL.JOBFINISHED", "/jobs/")
@example("Contoso.Etl.JobFinished", "/jobs/*", "contoso.etl.jobfinished", None)
@example("K", None, "\u212a", None)  # KELVIN SIGN lower-cases to "k"
def test_matcher_matches_only_the_configured_type_and_subject(
    configured_type: str, configured_subject: str | None, event_type: str, subject: str | None
) -> None:
    upstream = Upstream(eventType=configured_type, subject=configured_subject)
    result = upstream.matches(event_type, subject)
    assert isinstance(result, bool)
    if not result:
        return
    assert event_type.lower() == configured_type.lower()
    if configured_subject is None:
        return
    if configured_subject.endswith("*"):
        assert subject is not None or configured_subject == "*"
        assert (subject or "").startswith(configured_subject[:-1])
    else:
        assert subject == configured_subject


@PURE
@given(st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,40}", fullmatch=True), st.sampled_from("x. \x00"), seeds)
def test_matcher_ignores_ascii_case_of_the_type_only(configured_type: str, extra: str, rnd: random.Random) -> None:
    upstream = Upstream(eventType=configured_type, subject="/jobs/x")
    assert upstream.matches(recase(configured_type, rnd), "/jobs/x")
    assert not upstream.matches(recase(configured_type, rnd), "/JOBS/X")
    assert not upstream.matches(configured_type + extra, "/jobs/x")


@PURE
@given(json_values | st.dictionaries(st.just("status"), json_values, min_size=1))
@example({"status": "FAILED"})
@example({"status": ["Failed"]})
@example({"status": None, "detail": {"x": 1}})
def test_the_upstream_outcome_of_any_data_is_succeeded_or_failed(data: Any) -> None:
    status, _detail = _status(data)
    failed = isinstance(data, dict) and isinstance(data.get("status"), str) and data["status"].lower() == "failed"
    assert status == ("Failed" if failed else "Succeeded")
