"""An upstream detail reaches events as it is unless it nests deeper than Event Grid accepts; the
bound is the nesting of the detail itself, measured without recursion."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backup_chain.custom_status import MAX_EVENT_DETAIL_DEPTH, json_depth, upstream_detail_for_event


def nested(depth: int) -> Any:
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_depth_counts_containers() -> None:
    values: list[Any] = [0, "x", None, [], {}, [[]], {"a": [1, {"b": []}]}]
    assert [json_depth(v) for v in values] == [0, 0, 0, 1, 1, 2, 4]
    assert json_depth(nested(10_000)) == 10_000  # no recursion limit


def test_a_detail_up_to_the_bound_is_carried_as_it_is() -> None:
    detail = nested(MAX_EVENT_DETAIL_DEPTH)
    assert upstream_detail_for_event(detail) == detail


def test_a_deeper_detail_is_marked_with_its_depth_and_a_preview() -> None:
    detail = nested(MAX_EVENT_DETAIL_DEPTH + 1)
    shown = upstream_detail_for_event(detail)
    assert shown["truncated"] is True and shown["depth"] == MAX_EVENT_DETAIL_DEPTH + 1
    assert json.dumps(detail, separators=(",", ":")).startswith(shown["preview"])
    assert json_depth(shown) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=40,
)


@given(json_values)
def test_depth_agrees_with_a_recursive_count(value: Any) -> None:
    def recursive(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max((recursive(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((recursive(x) for x in v), default=0)
        return 0

    assert json_depth(value) == recursive(value)
