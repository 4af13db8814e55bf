"""LogFollower's resume rule with lines whose times are out of order.

Docker reads stdout and stderr through two pipes and stamps each line as it reads it, so a
stderr line can be logged after a stdout line yet carry an earlier time. A real engine cannot be
told to produce that order on demand, so a stand-in engine replays such a log here; the browser
test of the log viewer (tests/browser/test_log_viewer.py) meets it on the real engine.
"""

from __future__ import annotations

import json
from typing import Any

from portal.engines import LogChunk
from portal.hosts.log_follow import LogFollower

T1, T2, T3 = (f"2026-12-05T00:00:01.00000000{n}Z" for n in (1, 2, 3))
LOGGED = [LogChunk("stdout", "a\n", T1), LogChunk("stdout", "b\n", T3),
          LogChunk("stderr", "late\n", T2)]  # fmt: skip


class ReplayedEngine:
    """Stands in for an engine whose log holds LOGGED in the file's order."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def logs(self, container_id: str, **options: Any) -> list[LogChunk]:
        self.asked.append(options)
        return list(LOGGED)

    def close(self) -> None:
        pass


def _lines(follower: LogFollower) -> list[tuple[str, str | None]]:
    follower.open()
    shown = []
    for event in follower.events():
        kind, _, data = event.partition("event: ")[2].partition("\ndata: ")
        if kind == "line":
            shown.append((json.loads(data)["data"], event.split("\n", 1)[0]))
    return shown


def test_a_stderr_line_older_than_the_stdout_line_before_it_is_shown() -> None:
    follower = LogFollower(ReplayedEngine(), "c", follow=False, tail=None, since_ns=None)
    assert [text for text, _ in _lines(follower)] == ["a\n", "b\n", "late\n"]


def test_a_resumed_stream_skips_only_what_came_before_its_resume_point() -> None:
    engine = ReplayedEngine()
    t1_ns = 1_796_428_801_000_000_001  # T1 in nanoseconds
    follower = LogFollower(engine, "c", follow=False, tail=5, since_ns=t1_ns)
    assert [text for text, _ in _lines(follower)] == ["b\n", "late\n"]
    assert engine.asked[0]["tail"] is None  # from a point in time, not the last lines
    assert follower.after_ns == t1_ns + 2  # the next resume starts after the latest time: T3
