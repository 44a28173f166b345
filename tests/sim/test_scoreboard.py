"""The scoreboard (bnnflow.sim.scoreboard): output payloads decoded by the sidecar's layout and
compared with the golden classes and popcounts."""

import numpy as np

from bnnflow.sim.scoreboard import OutputLayout, Scoreboard


def test_scoreboard_reports_wrong_and_missing_outputs():
    layout = OutputLayout(class_width=2, popcount_width=3, classes=3)
    classes = np.array([2, 0, 1])
    popcounts = np.array([[1, 2, 5], [4, 4, 0], [0, 3, 3]])

    def payload(cls, pcs):
        return cls | sum(p << (2 + 3 * c) for c, p in enumerate(pcs))

    board = Scoreboard(classes, popcounts, layout, image_ids=[10, 11, 12])
    good = [payload(2, [1, 2, 5]), payload(0, [4, 4, 0])]
    assert layout.decode(good[1]) == (0, [4, 4, 0])
    mismatches = board.check([good[0], payload(0, [4, 5, 0])])
    assert [(m.image, m.actual) for m in mismatches] == [
        (11, {"class": 0, "popcounts": [4, 5, 0]}), (12, None)]
    assert mismatches[0].expected == {"class": 0, "popcounts": [4, 4, 0]}
    assert board.check([*good, payload(1, [0, 3, 3])]) == []
