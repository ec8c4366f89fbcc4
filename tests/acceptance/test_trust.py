"""Trust in the loop, in process: who sent a correction, whether its label is plausible,
how much one client supplies, the quarantine and its decisions (issue 34).

Here: the cases on the real MNIST; the others are in tests/unit/test_trust.py.
"""

from __future__ import annotations

import json


def test_the_mnist_test_sets_known_label_errors_are_in_the_evaluation_and_the_card(mnist_run):
    scores = json.loads(mnist_run.evaluation.read_text())
    known = scores["label_scores"]["known_label_errors"]
    assert known["validated_errors"] == 15 and 0 <= known["recall_at_50"] <= known["recall_at_100"] <= 15
    assert known["accuracy_given_labels"] == scores["test"]["accuracy"]
    assert known["corrected_test_size"] == 10_000 - 5  # the 5 validated errors the raters agreed on no label for
    calibrated = scores["label_scores"]["plausibility"]
    assert calibrated["validation_errors"] >= 20 and 0 < calibrated["threshold"] < 0.5
    card = mnist_run.card.read_text()
    assert f"{known['recall_at_50']} of the 15 validated label errors among the 50 least plausible" in card
    assert "Pervasive Label Errors in Test Sets" in card
