"""Session-wide: every event a local stack's downstream topic accepts must follow its type's JSON
Schema (docs/events.md, "Contract"). After each test, the events the stacks' Event Grid topics
accepted since the previous check are validated; a violation fails that test's teardown naming
the event's type, id and the error's path in the event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.event_contract import TopicLogWatch


@pytest.fixture(scope="session")
def published_event_watch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TopicLogWatch]:
    watch = TopicLogWatch(tmp_path_factory.getbasetemp())
    yield watch
    late = watch.new_violations()  # accepted after the last test's check (a module's stack teardown)
    if late:
        pytest.fail("published events break their schemas:\n" + "\n".join(late[:50]), pytrace=False)


@pytest.fixture(autouse=True)
def published_events_follow_their_schemas(published_event_watch: TopicLogWatch) -> Iterator[None]:
    yield
    problems = published_event_watch.new_violations()
    if problems:
        pytest.fail("published events break their schemas:\n" + "\n".join(problems[:50]), pytrace=False)
