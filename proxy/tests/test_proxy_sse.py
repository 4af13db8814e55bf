"""The incremental SSE parser: every framing the spec allows, cut at every byte."""

from __future__ import annotations

import pytest

from proxy import sse
from proxy.sse import SseParser

# CRLF, LF and CR line ends mixed, a CR followed by a CRLF (two line ends, not one), comments,
# other fields, multi-line data, a field without a colon and one without the optional space.
SAMPLE = (
    b": ping - 2026-01-01\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: message\nid: 7\ndata: two\ndata:  lines\n\n"
    b'data: {"b": 2}\r\r'
    b"data:x\r\r\n"
    b"data\n\n"
    b"retry: 10\r\n\r\n"
    b"data: [DONE]\r\n\r\n"
)
EXPECTED = [b'{"a": 1}', b"two\n lines", b'{"b": 2}', b"x", b"", b"[DONE]"]


def events_of(pieces: list[bytes]) -> list[bytes]:
    parser = SseParser()
    return [event.data for piece in pieces for event in parser.feed(piece)]


def test_whole_sample_gives_every_event_with_its_end():
    events = SseParser().feed(SAMPLE)
    assert [e.data for e in events] == EXPECTED
    assert events[-1].end == len(SAMPLE)
    # Each event ends just past the blank line that dispatched it.
    assert SAMPLE[: events[0].end].endswith(b'{"a": 1}\r\n\r\n')


@pytest.mark.parametrize("cut", range(1, len(SAMPLE)))
def test_two_pieces_cut_at_any_byte_give_the_same_events(cut):
    assert events_of([SAMPLE[:cut], SAMPLE[cut:]]) == EXPECTED


def test_one_byte_at_a_time_gives_the_same_events():
    assert events_of([SAMPLE[i : i + 1] for i in range(len(SAMPLE))]) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    # Without remembering the CR, the LF would read as a second (blank) line end.
    assert events_of([b"data: a\r", b"\ndata: b\r\n\r", b"\n"]) == [b"a\nb"]


def test_events_without_data_and_empty_chunks_dispatch_nothing():
    assert events_of([b"", b": comment\n\n", b"event: x\n\n", b""]) == []


def test_a_line_that_never_ends_is_dropped_not_held(monkeypatch):
    monkeypatch.setattr(sse, "MAX_LINE", 10)
    parser = SseParser()
    assert parser.feed(b"data: " + b"x" * 8) == []
    assert parser.feed(b"y" * 8) == []  # over the limit: dropped
    assert parser._partial == []
    assert [e.data for e in parser.feed(b"z\n\ndata: ok\n\n")] == [b"ok"]
