"""MNIST's test-set label errors that people validated: the external check of the label score.

Northcutt, Athalye and Mueller (2021), "Pervasive Label Errors in Test Sets
Destabilize ML Benchmarks", NeurIPS Datasets and Benchmarks Track. Confident
learning flagged 100 MNIST test images; 5 raters each said whether the image is
its given label, the label the flagging model guessed, or neither. The 15 below
are those where fewer than 3 raters agreed with the given label. Data from the
``cleanlab/label-errors`` repository, ``mturk/mnist_mturk.json`` (Apache
License 2.0); only indices, labels and votes are kept here.

Each row: (index into the standard 10,000-image test file, given label, guessed
label, (raters for given, for guessed, for neither)). The corrected label is the
guessed one where at least 3 raters chose it; the other images have no agreed
label, and the corrected test set leaves them out.
"""

from __future__ import annotations

SOURCE = ("Northcutt, Athalye and Mueller (2021), 'Pervasive Label Errors in Test Sets Destabilize ML "
          "Benchmarks'; cleanlab/label-errors, mturk/mnist_mturk.json (Apache License 2.0)")

MNIST_TEST = (
    (947, 8, 9, (0, 5, 0)),
    (1621, 0, 6, (2, 3, 0)),
    (1901, 9, 4, (2, 3, 0)),
    (2130, 4, 9, (2, 2, 1)),
    (2462, 2, 0, (0, 4, 1)),
    (2597, 5, 3, (0, 4, 1)),
    (2654, 6, 1, (0, 2, 3)),
    (3520, 6, 4, (2, 0, 3)),
    (3558, 5, 0, (1, 4, 0)),
    (5937, 5, 3, (1, 3, 1)),
    (6651, 0, 6, (0, 5, 0)),
    (6783, 1, 6, (2, 3, 0)),
    (8527, 4, 9, (2, 2, 1)),
    (9679, 6, 3, (2, 0, 3)),
    (9729, 5, 6, (2, 3, 0)),
)


def corrected_labels() -> dict[int, int | None]:
    """Test index -> its corrected label, or None where the raters agreed on none."""
    return {index: guessed if votes[1] >= 3 else None for index, _, guessed, votes in MNIST_TEST}
