"""Trust in the loop, in process: who sent a correction, whether its label is plausible,
how much one client supplies, the quarantine and its decisions (issue 34).

Here: the cases that run in this process and start nothing; the others are in tests/acceptance/test_trust.py.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lifecycle import quarantine
from lifecycle.intake import Screening, intake, take_from_inbox
from lifecycle.intake_sources import OPERATOR, Candidate, Limits, read_sources
from lifecycle.trust import FALLBACK_MIN_LABEL_PROBABILITY, TrustPolicy, allowances, champion_threshold
from mnistflow.dataset_files import locate
from mnistflow.datasets import class_labels
from mnistflow.errors import MnistflowError
from mnistflow.inference import Predictor
from mnistflow.dvc_stages import run_dvc_stage
from pictures.imaging import png_bytes
from serving.clients import FeedbackAccess, read_tokens
from serving.inbox import Inbox, Refused
from tests.helpers import make_arrays

CLASSES = class_labels("custom")
TIME = "2026-12-01T00:00:00.000+00:00"


@pytest.fixture
def champion(params, data_root, paths):
    """A model trained on the generated dataset (its classes are learnable), evaluated."""
    for stage in ("download", "split", "train", "evaluate"):
        run_dvc_stage(stage, params, data_root, paths)
    return Predictor.load(paths.model)


def fresh(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """New images of the generated dataset's classes (another draw of the same templates)."""
    arrays = make_arrays(n_train=n, n_test=1, seed=0)  # the templates are seed 0's
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    noise = rng.integers(-3, 4, arrays["train-images"].shape)
    images = np.clip(arrays["train-images"][order].astype(int) + noise, 0, 255).astype(np.uint8)
    return images, arrays["train-labels"][order]


@pytest.fixture
def png_digit() -> bytes:
    return png_bytes(fresh(1, seed=9)[0][0])


def candidates(images, labels, client: str) -> list[Candidate]:
    return [Candidate(f"{client}/{i}", image, int(label), client=client) for i, (image, label) in
            enumerate(zip(images, labels))]


# -- who sent it ----------------------------------------------------------------------------------

def test_a_token_names_its_client_and_anything_else_is_refused_or_anonymous():
    access = FeedbackAccess("open", {hashlib.sha256(b"s3cret").hexdigest(): "lab-a"}, ("10.0.0.0/8",))
    assert access.client("Bearer s3cret", "192.0.2.7", None) == "lab-a"
    with pytest.raises(Refused) as wrong:
        access.client("Bearer guess", "192.0.2.7", None)
    assert wrong.value.status == 401
    # X-Forwarded-For from a peer that is no listed proxy is not believed.
    assert access.client(None, "192.0.2.7", "198.51.100.1") == "anonymous:192.0.2.7"
    assert access.client(None, "10.1.2.3", "198.51.100.1, 10.9.9.9") == "anonymous:198.51.100.1"
    with pytest.raises(Refused, match="token only") as anonymous:
        FeedbackAccess("token").client(None, "192.0.2.7", None)
    assert anonymous.value.status == 401


def test_a_tokens_file_holds_hashes_and_a_bad_line_is_named(tmp_path):
    good = tmp_path / "tokens"
    good.write_text(f"# clients\n{hashlib.sha256(b't').hexdigest()} lab a\n")
    assert read_tokens(good) == {hashlib.sha256(b"t").hexdigest(): "lab a"}
    bad = tmp_path / "bad"
    bad.write_text("plain-token lab-a\n")
    with pytest.raises(MnistflowError, match=r"bad line 1: expected '<sha256 hex"):
        read_tokens(bad)


def test_the_inbox_records_its_client_and_intake_reads_it(tmp_path, png_digit):
    inbox = Inbox(tmp_path / "inbox")
    inbox.add(png_digit, "7", "a" * 64, "1", CLASSES, None, "lab-a")
    (candidate,) = read_sources([], CLASSES, (28, 28), Limits(), tmp_path / "inbox")
    assert candidate.client == "lab-a" and candidate.label == 7 and candidate.refused is None


# -- how much from one client ---------------------------------------------------------------------

def test_a_flood_from_one_client_never_becomes_most_of_what_is_added():
    policy = TrustPolicy(client_share=0.2, client_cap=1000, client_floor=10)
    kept = allowances(Counter({"flood": 1000, "a": 50, "b": 50, "c": 50}), Counter(), policy)
    assert kept["a"] == kept["b"] == kept["c"] == 275  # room for all 50 of each: 0.25 x (1000 + 100)
    assert kept["flood"] == 37  # 0.25 x the 150 the others offer: 37 / (37 + 150) <= 20%
    # The operator's own items always count, and are never cut.
    kept = allowances(Counter({"x": 1000, OPERATOR: 400}), Counter(), policy)
    assert kept[OPERATOR] == 400 and kept["x"] == 100 and 100 / 500 <= 0.2
    # What a client added since the champion counts against it.
    assert allowances(Counter({"a": 100}), Counter({"a": 30, OPERATOR: 400}), policy)["a"] == 70


# -- is the label plausible -----------------------------------------------------------------------

def test_the_threshold_is_the_champions_own_unless_given():
    calibrated = {"label_scores": {"plausibility": {"threshold": 0.004}}}
    assert champion_threshold(calibrated, TrustPolicy()) == 0.004
    assert champion_threshold(calibrated, TrustPolicy(min_label_probability=0.2)) == 0.2
    assert champion_threshold({}, TrustPolicy()) == FALLBACK_MIN_LABEL_PROBABILITY


def test_wrong_labels_are_quarantined_genuine_ones_kept_and_excess_waits(params, data_root, champion, tmp_path):
    images, labels = fresh(300, seed=1)
    genuine = candidates(images[:60], labels[:60], "lab-a") + candidates(images[60:120], labels[60:120], "lab-b")
    flood = candidates(images[120:], (labels[120:] + 3) % 10, "flood")  # 180 wrong labels
    screening = Screening(champion, 0.05, (), TrustPolicy(client_share=0.2))
    report = intake("custom", lambda: locate(params.data, data_root), data_root, genuine + flood,
                    ["feedback"], TIME, screening)

    assert report.accepted >= 114  # at least 95% of the 120 genuine items
    caught = [q for q in report.quarantined if q["client"] == "flood"]
    assert len(caught) >= 0.99 * 180
    assert report.clients.get("flood", 0) <= 0.2 * report.accepted
    for item in report.quarantined:  # kept, with its picture, claim, the champion's top 3 and the reason
        record = json.loads(quarantine.picture_of(data_root, "custom", item["id"]).with_suffix(".json").read_text())
        assert record["label_probability"] < 0.05 and len(record["top"]) == 3 and "implausible label" in record["reason"]
        assert record["decision"] is None
    manifest = json.loads((Path(report.directory) / "manifest.json").read_text())
    assert manifest["clients"] == report.clients
    assert {item["client"] for item in manifest["items"]} <= {"lab-a", "lab-b", "flood"}


def test_without_a_champion_nothing_is_scored_and_the_report_says_so(params, data_root, paths):
    run_dvc_stage("download", params, data_root, paths)
    images, labels = fresh(20, seed=2)
    report = intake("custom", lambda: locate(params.data, data_root), data_root,
                    candidates(images, (labels + 1) % 10, "lab-a"), ["feedback"], TIME,
                    Screening(None, 0.05, (), TrustPolicy(client_floor=100)))
    assert report.accepted == 20 and not report.quarantined and "no champion yet" in report.note


def test_items_over_a_share_stay_in_the_inbox(tmp_path, png_digit):
    inbox = Inbox(tmp_path / "inbox")
    for _ in range(3):
        inbox.add(png_digit, "7", "a" * 64, None, CLASSES, None, "flood")
    read = read_sources([], CLASSES, (28, 28), Limits(), tmp_path / "inbox")
    waiting = [{"origin": read[0].origin}]
    take_from_inbox(tmp_path / "inbox", read, "batch", waiting)
    assert sorted(p.name for p in (tmp_path / "inbox").glob("*.png")) == [read[0].origin.rsplit("/", 1)[1]]


def test_a_decision_is_recorded_once_with_who_and_when(params, data_root, champion):
    images, labels = fresh(10, seed=3)
    report = intake("custom", lambda: locate(params.data, data_root), data_root,
                    candidates(images, (labels + 5) % 10, "flood"), ["feedback"], TIME,
                    Screening(champion, 0.5, (), TrustPolicy(client_floor=100)))
    ids = [q["id"] for q in report.quarantined]
    assert len(ids) >= 2 and [r["id"] for r in quarantine.pending(data_root, "custom")] == ids
    (decided,) = quarantine.decide(data_root, "custom", ids[:1], False, {"reviewer": "ann"}, TIME)
    assert decided["decision"] == {"accepted": False, "by": {"reviewer": "ann"}, "time": TIME}
    assert ids[0] not in [r["id"] for r in quarantine.pending(data_root, "custom")]
    with pytest.raises(MnistflowError, match="already rejected by ann"):
        quarantine.decide(data_root, "custom", ids[:1], True, {"reviewer": "bob"}, TIME)
    with pytest.raises(MnistflowError, match="not a quarantined item's id"):
        quarantine.decide(data_root, "custom", ["../../etc/passwd"], True, {}, TIME)


# -- the judge looks at the new data --------------------------------------------------------------

def test_a_challenger_that_disagrees_with_its_new_labels_no_better_than_the_champion_is_held():
    from flows.promotion import held_for_review
    from lifecycle.registry import decide

    promoted = decide(0.9566, 0.9441, 0.0)
    poisoned = held_for_review(promoted, {"recent": {"accuracy": 0.065}}, 0.3, lambda: 0.10)
    assert not poisoned.promote and poisoned.reason.startswith("held for review: the challenger agrees with 6.50%")
    assert held_for_review(promoted, {"recent": {"accuracy": 0.10}}, 0.3, lambda: 0.0).promote  # hard, genuine
    assert held_for_review(promoted, {"recent": {"accuracy": 0.95}}, 0.3, lambda: 0.5).promote
    assert held_for_review(promoted, {}, 0.3, lambda: 0.0).promote  # no new data: the test set decides


def test_the_inbox_has_a_global_cap_and_a_write_it_cannot_make_is_a_507(tmp_path, png_digit):
    from serving.inbox import InboxLimits

    inbox = Inbox(tmp_path / "inbox", InboxLimits(per_minute=3))
    for n in range(3):
        inbox.add(png_digit, "7", "a" * 64, None, CLASSES, None, f"anonymous:10.0.0.{n}")
    with pytest.raises(Refused, match="more than 3 corrections a minute in all") as capped:
        inbox.add(png_digit, "7", "a" * 64, None, CLASSES, None, "anonymous:10.0.0.9")
    assert capped.value.status == 429
    (tmp_path / "not-a-folder").write_text("a file where the inbox should be")
    with pytest.raises(Refused, match="the feedback inbox cannot take it now") as unwritable:
        Inbox(tmp_path / "not-a-folder" / "inbox").add(png_digit, "7", "a" * 64, None, CLASSES, None, "x")
    assert unwritable.value.status == 507


def test_a_retraction_of_a_clients_items_keeps_the_others_and_finishes_an_interrupted_one(params, data_root, paths):
    import shutil

    from lifecycle.retraction import retract

    run_dvc_stage("download", params, data_root, paths)
    images, labels = fresh(40, seed=4)
    files_of = lambda: locate(params.data, data_root)  # noqa: E731
    report = intake("custom", files_of, data_root, candidates(images[:20], labels[:20], "lab-a")
                    + candidates(images[20:], labels[20:], "flood"), ["feedback"], TIME,
                    Screening(None, 0.0, (), TrustPolicy(client_floor=100)))
    old = Path(report.directory)
    kept = shutil.copytree(old, data_root / "copy-of-old")  # to replay a kill after the rewrite
    done = retract(files_of, data_root, "custom", [], "flood", {"reason": "a flood"}, TIME)
    (new,) = files_of().increments
    manifest = json.loads((Path(new.directory) / "manifest.json").read_text())
    assert done["items"] == 20 and manifest["replaces"] == old.name and manifest["clients"] == {"lab-a": 20}
    note = json.loads((data_root / "retracted" / "custom" / old.name / "retraction.json").read_text())
    assert note["reason"] == "a flood"
    # A kill between the rewrite and setting the old one aside left both: the next retraction finishes it.
    shutil.rmtree(data_root / "retracted")
    shutil.copytree(kept, old)
    assert len(files_of().increments) == 2
    with pytest.raises(MnistflowError, match="no item of 'flood'"):
        retract(files_of, data_root, "custom", [], "flood", {"reason": "again"}, TIME)
    assert [i.id for i in files_of().increments] == [new.id]
