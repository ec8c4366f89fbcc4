"""Drift: does what the service answered lately look like the validation set?

The window (serving/window.py) against the champion's ``profile.json``
(mnistflow/profile.py), with standard two-sample tests from scipy:

- the predicted classes: a chi-square test of the window's counts against the
  profile's proportions (half a count added to every class of the profile, so
  a class it never predicted cannot divide by zero);
- confidence, mean intensity, ink height and ink width: Kolmogorov-Smirnov.

A statistic has moved when its p-value is below ``P_VALUE`` *and* the change is
large enough to matter: a KS distance over ``KS_DISTANCE``, or classes whose
total variation distance is over ``CLASS_DISTANCE``. (With thousands of images a
p-value alone flags changes too small to act on.) A window smaller than
``MIN_WINDOW`` is too small to judge, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

P_VALUE = 0.001
# Genuine digits from one group of writers differ from the validation set's mix by up
# to 0.24 (confidence, over the ten 1,000-image slices of MNIST's test set, which is
# ordered by writer; mean intensity up to 0.22): at 0.15, four of those ten alarmed.
# Fashion images move confidence by 0.73 and classes by 0.39 (issue 39, section 4).
KS_DISTANCE = 0.3
CLASS_DISTANCE = 0.15
MIN_WINDOW = 200


@dataclass(frozen=True)
class Thresholds:
    p_value: float = P_VALUE
    ks_distance: float = KS_DISTANCE
    class_distance: float = CLASS_DISTANCE
    min_window: int = MIN_WINDOW


@dataclass
class DriftReport:
    size: int
    judged: bool
    drift: bool = False
    message: str = ""
    statistics: dict[str, dict[str, float | bool]] = field(default_factory=dict)

    @property
    def moved(self) -> list[str]:
        return [name for name, s in self.statistics.items() if s["moved"]]


def compare(profile: dict[str, Any], window: dict[str, Any], thresholds: Thresholds = Thresholds()) -> DriftReport:
    from scipy import stats

    size = int(window.get("size", 0))
    if size == 0:
        return DriftReport(0, False, message="the window is empty: the service answered nothing yet; nothing to judge")
    if size < thresholds.min_window:
        return DriftReport(size, False, message=f"{size} images in the window, fewer than the {thresholds.min_window} "
                                                "needed to judge; nothing flagged")
    report = DriftReport(size, True)
    expected = np.asarray(profile["class_counts"], dtype=np.float64) + 0.5
    observed = np.asarray(window["class_counts"], dtype=np.float64)
    expected_share, observed_share = expected / expected.sum(), observed / observed.sum()
    chi2, p = stats.chisquare(observed, expected_share * observed.sum())
    distance = 0.5 * float(np.abs(expected_share - observed_share).sum())
    report.statistics["classes"] = {"chi2": float(chi2), "p_value": float(p), "distance": distance,
                                    "moved": bool(p < thresholds.p_value and distance > thresholds.class_distance)}
    for name, baseline in profile["samples"].items():
        result = stats.ks_2samp(np.asarray(baseline), np.asarray(window["samples"][name]))
        report.statistics[name] = {"ks": float(result.statistic), "p_value": float(result.pvalue),
                                   "moved": bool(result.pvalue < thresholds.p_value
                                                 and result.statistic > thresholds.ks_distance)}
    report.drift = bool(report.moved)
    report.message = (f"drift in {', '.join(report.moved)} over the last {size} images" if report.drift
                      else f"no drift over the last {size} images")
    return report
