"""How pages word values: timestamps to the second, refused forms as one line per field."""

from __future__ import annotations

from datetime import datetime

import pytest

from portal.apps.views import actions_for
from portal.core.command_line import split_command
from portal.core.errors import ValidationFailed
from portal.web.display import describe_error, error_lines, when


def test_nested_marshmallow_errors_become_paths_once_each() -> None:
    details = {
        "upstreams": {0: ["Not a valid URL."], 2: {"url": ["Too long.", "Too long."]}},
        "name": ["Missing data for required field."],
        "_schema": ["Give argv or command."],
    }

    assert error_lines(details) == [
        "upstreams[0]: Not a valid URL.",
        "upstreams[2].url: Too long.",
        "name: Missing data for required field.",
        "Give argv or command.",
    ]


def test_a_generic_sentence_gives_way_to_the_fields_and_a_specific_one_is_not_repeated() -> None:
    listing = describe_error("Invalid input in: upstreams.", {"upstreams": {"0": ["Bad."]}})
    specific = describe_error("The command is empty.", {"command": ["empty"]})

    assert listing == "Check these fields:\nupstreams[0]: Bad."
    assert specific == "The command is empty."
    assert "{" not in listing


def test_times_show_seconds_and_keep_the_full_value_in_the_tooltip() -> None:
    shown = str(when(datetime(2025, 3, 4, 5, 6, 7, 891011)))

    assert ">2025-03-04 05:06:07</time>" in shown
    assert 'title="2025-03-04 05:06:07.891011 UTC"' in shown
    assert 'datetime="2025-03-04T05:06:07Z"' in shown
    assert str(when(None, default="never")) == "never"


def test_command_lines_split_as_a_shell_would() -> None:
    assert split_command('sh -c "while true; do echo hi; sleep 2; done"') == [
        "sh",
        "-c",
        "while true; do echo hi; sleep 2; done",
    ]
    assert split_command(r"echo a\ b 'c d'") == ["echo", "a b", "c d"]
    with pytest.raises(ValidationFailed, match="No closing quotation"):
        split_command('echo "open')


@pytest.mark.parametrize(
    ("status", "offered", "not_offered"),
    [
        ("running", {"stop", "restart"}, {"start"}),
        ("exited (1)", {"start"}, {"stop", "restart"}),
        ("pending", {"pull"}, {"start", "stop", "remove"}),
        ("failed", {"remove"}, {"start", "stop"}),
        ("removed", set(), {"start", "stop", "remove", "pull"}),
        ("unknown", {"start", "stop"}, set()),
    ],
)
def test_only_the_actions_that_apply_to_a_status_are_offered(
    status: str, offered: set[str], not_offered: set[str]
) -> None:
    actions = set(actions_for(status))

    assert offered <= actions and not (not_offered & actions)
