"""Intake's plausibility score on the real MNIST: how many genuine corrections it keeps, how many poisons it quarantines.

    python -m bench.label_trust [--seeds 3] [--preset params.yaml] [--work .bench/label-trust]

A champion is trained (the preset, default the recipe) on MNIST's first 50,000
training images, a custom dataset as bench.warm_start builds it; the last
10,000 are digits it never saw. On them, each candidate's score is the
champion's probability of its claimed label (``mnistflow.inference.label_probability``,
as intake computes it):

- genuine corrections: the unseen digits the champion got wrong, with their true labels;
- random poisons: every unseen digit with a random wrong label;
- second-choice poisons: the digits it got right, labelled with its second choice;
- ambiguous poisons: the same, on the 10% of those with the smallest margin between its first two choices.

For each seed it prints the rates at the champion's own threshold (what intake
uses: its evaluation's ``label_scores.plausibility``, calibrated on the
validation images it got wrong) and at the threshold that keeps exactly 95% of
these unseen genuine corrections (an oracle); then mean and spread over seeds
against the targets (>= 95% genuine accepted, >= 99% random and >= 85% second-choice
quarantined). The ambiguous attack is reported, not targeted: no score can
tell a plausible wrong label from a right one; shares and the judge bound it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path

import numpy as np

from bench.warm_start import late_data, run
from mnistflow.datasets import FILE_NAMES
from mnistflow.download import download
from mnistflow.idx import read_idx
from mnistflow.inference import Predictor, label_probability
from mnistflow.params import load_params, validate

TARGETS = {"genuine accepted": 95.0, "random quarantined": 99.0, "second-choice quarantined": 85.0}


def candidate_scores(predictor: Predictor, images: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The score of each kind of candidate, from the champion's probabilities on unseen digits."""
    probabilities = predictor.probabilities(images.astype(np.float32) / 255.0)
    order = np.argsort(-probabilities, axis=1)
    right = order[:, 0] == labels
    second = order[:, 1]
    margin = probabilities[np.arange(len(labels)), order[:, 0]] - probabilities[np.arange(len(labels)), second]
    ambiguous = right & (margin <= np.quantile(margin[right], 0.10))
    wrong_labels = (labels + np.random.default_rng(seed).integers(1, 10, len(labels))) % 10
    return {"genuine": label_probability(probabilities[~right], labels[~right]),
            "random": label_probability(probabilities, wrong_labels),
            "second-choice": label_probability(probabilities[right], second[right]),
            "ambiguous": label_probability(probabilities[ambiguous], second[ambiguous])}


def rates(scores: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    return {"genuine accepted": 100 * float(np.mean(scores["genuine"] >= threshold)),
            "random quarantined": 100 * float(np.mean(scores["random"] < threshold)),
            "second-choice quarantined": 100 * float(np.mean(scores["second-choice"] < threshold)),
            "ambiguous quarantined": 100 * float(np.mean(scores["ambiguous"] < threshold))}


def line(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f}%" for name, value in values.items())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.label_trust", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset", type=Path, default=None, help="the champion's params (default: the recipe)")
    parser.add_argument("--work", type=Path, default=Path(".bench/label-trust"))
    args = parser.parse_args()
    mirror = Path(os.environ.pop("MNISTFLOW_MIRROR", ""))
    if not (mirror / FILE_NAMES["train-images"]).exists():
        raise SystemExit("set MNISTFLOW_MIRROR to a folder with MNIST's four *-ubyte.gz files")
    shutil.rmtree(args.work, ignore_errors=True)
    checksums, arriving = late_data(mirror, args.work, 10_000)
    unseen_images = read_idx(arriving, 3)
    unseen_labels = read_idx(arriving.with_name("late-labels-idx1-ubyte"), 1).astype(np.int64)
    preset = load_params(args.preset).model_dump(mode="json") if args.preset else {}
    data = {**preset.get("data", {}), "dataset": "custom", "mirrors": [str(args.work / "mirror")],
            "checksums": checksums}
    files = download(validate({"data": data}).data, args.work / "data")

    shipped, calibrated, thresholds = [], [], []
    for seed in range(args.seeds):
        raw = {**preset, "data": data, "train": {**preset.get("train", {}), "seed": seed}}
        champion = run(raw, files, args.work / f"champion-{seed}")
        scores = candidate_scores(Predictor.load(champion["model"]), unseen_images, unseen_labels, seed)
        keep_95 = float(np.quantile(scores["genuine"], 0.05))
        evaluation = json.loads((args.work / f"champion-{seed}" / "evaluation.json").read_text())
        own = evaluation["label_scores"]["plausibility"]["threshold"]
        shipped.append(rates(scores, own))
        calibrated.append(rates(scores, keep_95))
        thresholds.append((own, keep_95))
        print(f"seed {seed}: champion test {100 * champion['test']:.2f}%, {len(scores['genuine'])} genuine "
              f"corrections among 10,000 unseen digits")
        print(f"  at the champion's own threshold {own:.4g}: {line(shipped[-1])}")
        print(f"  at {keep_95:.4g} (keeps 95% of genuine): {line(calibrated[-1])}")

    def spread(rows: list[dict[str, float]], name: str) -> str:
        values = [r[name] for r in rows]
        return f"{statistics.mean(values):.1f}% ± {statistics.stdev(values) if len(values) > 1 else 0:.1f}"

    print(f"over {args.seeds} seeds, at each champion's own threshold:")
    for name in rates({k: np.zeros(1) for k in ("genuine", "random", "second-choice", "ambiguous")}, 0):
        target = TARGETS.get(name)
        mean = statistics.mean(r[name] for r in shipped)
        verdict = f"(target >= {target:g}%: {'met' if mean >= target else 'NOT met'})" if target else "(no target)"
        print(f"  {name:28} {spread(shipped, name)} {verdict}")
    for name in ("genuine accepted", "second-choice quarantined"):
        print(f"  (oracle, keeping exactly 95% of these genuine corrections: {name} {spread(calibrated, name)})")
    print("thresholds, own vs oracle: " + ", ".join(f"{own:.3g} vs {oracle:.3g}" for own, oracle in thresholds))


if __name__ == "__main__":
    main()
