"""The pace of a line (chatd/estimates.py): what the waiting times citizens are told are made of."""

from __future__ import annotations

import pytest

from chatd.estimates import pace

MODEL = 10.0  # seconds per place by the model
T0 = 1_800_000_000_000


def moving(n: int, every_ms: int, busy: bool = True) -> list[tuple[int, int]]:
    """n moves ``every_ms`` apart, someone waiting all along (or nobody between them)."""
    return [(T0 + i * every_ms, every_ms if busy and i else 0) for i in range(n)]


def test_before_the_line_has_moved_the_model_holds() -> None:
    assert pace([], None, T0, MODEL) == MODEL
    assert pace([], T0, T0, MODEL) == MODEL  # someone came just now


def test_a_line_that_moves_steadily_is_read_at_its_pace() -> None:
    moves = moving(24, 2000)  # a place every 2 s for 46 s
    now = moves[-1][0]
    assert pace(moves, T0, now, MODEL) == pytest.approx(2.0, rel=0.2)


def test_a_line_that_stops_is_seen_slowing_at_once() -> None:
    moves = moving(24, 2000)
    last = moves[-1][0]
    steady = pace(moves, T0, last, MODEL)
    stopped = [pace(moves, T0, last + s * 1000, MODEL) for s in (5, 20, 60)]
    assert steady < stopped[0] < stopped[1] < stopped[2]
    assert stopped[2] > 4.0  # a minute without a move: no longer 2 s a place


def test_time_when_nobody_waited_counts_at_most_the_model() -> None:
    """Night: chats taken at once, an hour apart. Their gaps say there was room, not that the
    line takes an hour a place: the first to find every slot busy is told the model's time."""
    quiet = moving(10, 3_600_000 // 10, busy=False)
    now = quiet[-1][0] + 1000
    assert pace(quiet, now - 1000, now, MODEL) == pytest.approx(MODEL, rel=0.05)


def test_nobody_waiting_now_adds_no_time() -> None:
    moves = moving(10, 1000)
    later = moves[-1][0] + 600_000
    assert pace(moves, None, later, MODEL) == pace(moves, None, moves[-1][0], MODEL)


def test_chats_taken_together_keep_the_wait_before_them() -> None:
    """One matching run takes three chats after two minutes with nobody taken: the moves share
    its time and only the first carries the wait, in whatever order the ring returns them."""
    before = moving(10, 1000)
    at = before[-1][0] + 120_000
    together = [(at, 0), (at, 0), (at, 120_000)]
    for moves in (before + together, together + before):
        assert pace(moves, None, at, MODEL) == pytest.approx((MODEL + 9 + 120) / 13)
