"""How long a citizen will wait: the pace of a topic's line, read from how it moved lately.

A line moves one place each time a live chat leaves it: taken by a gendarme, left for later,
or closed by its visitor. Those moves hold what no model of slots does: chats of two slots
waiting for a gendarme with two free, higher-priority lines served first, people ahead who
give up, gendarmes slower at night. So the pace is the time the line took for its last moves,
counted up to now: a line that stopped is seen slowing down at once, one that starts again is
seen moving as soon as it moves.

Time in which nobody waited says nothing of the pace but that there was room: it counts at
most the model's time per place (the topic's average chat length shared among the slots of
the gendarmes available for it), and so does one more place, a prior that weighs little once
the line has moved a few times and carries the estimate until it has.
"""

from __future__ import annotations

from collections.abc import Sequence


def pace(moves: Sequence[tuple[int, int]], head_since: int | None, now: int,
         model_s: float) -> float:
    """Seconds per place in a line.

    ``moves``: (when, ms of the time since the move before in which someone waited), epoch
    ms, in any order; ``head_since``: when the first one waiting now came (None: nobody
    waits); ``now``: the clock of both (Redis's); ``model_s``: the model's seconds per
    place."""
    # the moves of one script share its time, and only the first of them carries the wait
    moves = sorted(moves, key=lambda m: (m[0], -m[1]))
    spent, places = model_s, 1  # the prior
    for (before, _), (at, busy) in zip(moves, moves[1:]):
        interval = max(0, at - before) / 1000
        waited = min(busy / 1000, interval)
        spent += waited + min(interval - waited, model_s)
        places += 1
    if head_since is not None:  # the time since the last move counts, without a place
        last = moves[-1][0] if moves else head_since
        start = max(last, head_since)
        spent += max(0, now - start) / 1000 + min((start - last) / 1000, model_s)
    return spent / places
