"""Trust in what intake takes: whether a label is plausible, and how much one client supplies.

After the gate (lifecycle/gate.py), two more rules, in order:

1. **Plausibility.** The champion scores each item: its probability of the
   claimed label (``mnistflow.inference.label_probability``). The champion has
   never trained on a new item, so the score is out of sample. An item under
   the champion's threshold is quarantined: kept with its picture, claimed
   label, the champion's top 3 and the reason, outside the increment, until a
   person decides (``python -m flows.intake --review``). With no champion
   yet, nothing is scored, and the report says so.
2. **Shares.** No feedback client supplies more than ``client_share`` of the
   items added since the champion (its own counted in), nor more than
   ``client_cap``; each may always add ``client_floor``. Items over the share
   wait in the inbox, listed, and count in a later intake once others have sent
   enough. Sources given on the command line are the operator's, and exempt.

The threshold is calibrated on genuine corrections, not on random labels: a
correction exists because the model was wrong, so genuine ones score low too.
Each champion carries its own (mnistflow.label_scores: the score that keeps 97.5%
of the validation images it got wrong, with their true labels);
``python -m bench.label_trust`` measures what it catches on digits the champion
never saw (docs/operations.md, "Trust in the loop").
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnistflow.inference import Predictor, label_probability

from .intake_sources import OPERATOR, Candidate

# For a champion whose evaluation has no calibrated threshold (promoted before
# mnistflow.label_scores existed): bench.label_trust measured the recipe's network
# keeping 95% of genuine corrections at 0.0009 and cnn-fast's at 0.036.
FALLBACK_MIN_LABEL_PROBABILITY = 0.001


@dataclass(frozen=True)
class TrustPolicy:
    # None: the champion's own threshold (its evaluation.json's label_scores.plausibility).
    min_label_probability: float | None = None
    client_share: float = 0.2   # of the items added since the champion
    client_cap: int = 1_000     # items one client adds between two champions, whatever others send
    client_floor: int = 10      # items a client may always add: a lone user's first corrections


@dataclass
class Screened:
    """Intake's gated candidates, sorted by the trust rules."""

    accepted: list[Candidate] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # with its candidate under "candidate"
    waiting: list[dict[str, Any]] = field(default_factory=list)      # over its client's share, left in the inbox
    note: str = ""


def champion_threshold(evaluation: dict[str, Any], policy: TrustPolicy) -> float:
    """The threshold: the policy's when given, else the champion's calibrated one."""
    if policy.min_label_probability is not None:
        return policy.min_label_probability
    calibrated = ((evaluation.get("label_scores") or {}).get("plausibility") or {}).get("threshold")
    return FALLBACK_MIN_LABEL_PROBABILITY if calibrated is None else float(calibrated)


def plausibility(candidates: list[Candidate], champion: Predictor, threshold: float) -> Screened:
    """Score each candidate with the champion; quarantine those under ``threshold``."""
    screened = Screened()
    if not candidates:
        return screened
    pixels = np.stack([c.pixels for c in candidates]).astype(np.float32) / 255.0
    probabilities = champion.probabilities(pixels)
    scores = label_probability(probabilities, np.array([c.label for c in candidates]))
    for candidate, score, row in zip(candidates, scores, probabilities):
        if score >= threshold:
            screened.accepted.append(candidate)
            continue
        top = champion.answer(row)["top"]
        screened.quarantined.append({
            "candidate": candidate, "origin": candidate.origin, "client": candidate.client,
            "label": champion.labels[candidate.label], "label_probability": float(score), "top": top,
            "reason": (f"implausible label: the champion gives {champion.labels[candidate.label]!r} "
                       f"{score:.3g}, under the threshold {threshold:.3g}; it reads "
                       f"{top[0]['label']!r} ({top[0]['probability']:.1%})")})
    return screened


def allowances(offered: Counter, earlier: Counter, policy: TrustPolicy) -> dict[str, int]:
    """How many items each feedback client may add now, given what every client offers now
    (``offered``: what passed the gate, before the score) and what each added since the
    champion (``earlier``); the operator included, and never limited.

    A client may bring its total since the champion to ``client_share / (1 - client_share)``
    times what all the others added and offer now (so it is at most ``client_share`` of the
    two together), at least ``client_floor``, at most ``client_cap``. Measured against what
    the others offer, not what they are finally allowed: three genuine clients beside one
    flood keep theirs, and the flood gets its share of them. Two floods measured against
    each other are bounded by the cap, the score and the judge, not by the share.
    """
    ratio = policy.client_share / (1 - policy.client_share) if policy.client_share < 1 else math.inf
    everyone = sum(earlier.values()) + sum(offered.values())
    room = {}
    for client, wanted in offered.items():
        if client == OPERATOR:
            room[client] = wanted
            continue
        others = everyone - earlier[client] - wanted
        by_share = math.floor(ratio * others) if math.isfinite(ratio) else policy.client_cap
        room[client] = max(0, min(policy.client_cap, max(policy.client_floor, by_share)) - earlier[client])
    return room


def shares(candidates: list[Candidate], offered: Counter, earlier: Counter, policy: TrustPolicy
           ) -> tuple[list[Candidate], list[dict]]:
    """The candidates within their clients' shares, and the others (which wait), each with its reason."""
    room = allowances(offered, earlier, policy)
    taken: Counter = Counter()
    kept, waiting = [], []
    for candidate in candidates:
        if candidate.client == OPERATOR or taken[candidate.client] < room[candidate.client]:
            taken[candidate.client] += 1
            kept.append(candidate)
        else:
            waiting.append({"origin": candidate.origin, "client": candidate.client,
                            "reason": f"waits: {candidate.client} may add {room[candidate.client]} more now "
                                      f"({earlier[candidate.client]} since the champion; its share is "
                                      f"{policy.client_share:.0%} of what all clients add, at most "
                                      f"{policy.client_cap:,}, at least {policy.client_floor})"})
    return kept, waiting


def screen(candidates: list[Candidate], champion: Predictor | None, threshold: float, earlier: Counter,
           policy: TrustPolicy) -> Screened:
    """Plausibility, then shares, on the candidates the gate accepted."""
    if champion is None:
        screened = Screened(accepted=list(candidates),
                            note="no champion yet: no label was scored (the first champion learns from all)")
    else:
        screened = plausibility(candidates, champion, threshold)
    offered = Counter(c.client for c in candidates)
    screened.accepted, screened.waiting = shares(screened.accepted, offered, earlier, policy)
    return screened
