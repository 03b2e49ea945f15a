"""devhost enforces Azure's 16 KB cap on custom status as the Durable extension does: the JSON's
UTF-16 size, truncated to whole KB, may not exceed 16; past it the orchestration fails and keeps
its previous status."""

from __future__ import annotations

import pytest

from devhost.orchestration import custom_status_error
from tests.support.devhost_harness import DevHostProcess

# {"blob":"…"} is 11 characters around the text; 17 KB of UTF-16 is 8,704 characters.
LARGEST_ASCII = 17 * 1024 // 2 - 11 - 1


def test_the_largest_status_that_fits_is_kept(host: DevHostProcess) -> None:
    host.start_orchestration("big_status", "cap-fits", {"text": "x", "count": LARGEST_ASCII})
    status = host.wait_status("cap-fits")
    assert status["runtimeStatus"] == "Completed", status.get("output")
    assert len(status["customStatus"]["blob"]) == LARGEST_ASCII


def test_one_character_more_fails_the_orchestration_and_keeps_the_old_status(host: DevHostProcess) -> None:
    host.start_orchestration("big_status", "cap-over", {"text": "x", "count": LARGEST_ASCII + 1})
    status = host.wait_status("cap-over")
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == (
        "Orchestrator function 'big_status' failed: The UTF-16 size of the JSON-serialized payload must "
        "not exceed 16 KB. The current payload size is 17 KB."
    )
    assert status["customStatus"] == {"phase": "small"}


@pytest.mark.parametrize(
    ("text", "count", "fits"),
    [
        ("日", LARGEST_ASCII, True),  # one UTF-16 unit, like ASCII
        ("😀", LARGEST_ASCII // 2, True),  # two UTF-16 units (a surrogate pair)
        ("😀", LARGEST_ASCII // 2 + 1, False),
        ("\\", LARGEST_ASCII // 2, True),  # escaped in JSON: two characters
        ("\\", LARGEST_ASCII // 2 + 1, False),
    ],
)
def test_size_is_counted_in_utf16_of_the_json(text: str, count: int, fits: bool) -> None:
    assert (custom_status_error({"blob": text * count}) is None) is fits
