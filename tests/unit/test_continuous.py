"""Continuous training, in process: intake's sources and gate, increments, the stable
split, the recent-data slice, warm start, versions and rollback.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_continuous.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lifecycle import registry, versions
from lifecycle.gate import Gate
from lifecycle.intake import intake
from lifecycle.intake_sources import Limits, read_sources
from lifecycle.registry_paths import RegistryPaths
from mnistflow.dataset_files import locate
from mnistflow.datasets import class_labels
from mnistflow.errors import MnistflowError
from mnistflow.idx import read_idx
from mnistflow.increments import in_validation, list_increments
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from mnistflow.split import make_split
from mnistflow.tensors import load_device_data
from pictures.labels import class_index
from tests.helpers import CLASSES, SHAPE, add_items, new_items, tiny_params, write_idx_pair


def test_adding_data_never_moves_an_earlier_validation_image(params, files, data_root, paths, tmp_path):
    make_split(files, params.data, paths.split)
    base = json.loads(paths.split.read_text())
    assert "increments" not in base  # a dataset with none keeps its split's bytes

    add_items(params, data_root, [write_idx_pair(tmp_path / "a", *new_items(300, seed=11))])
    make_split(locate(params.data, data_root), params.data, paths.split)
    first = json.loads(paths.split.read_text())
    add_items(params, data_root, [write_idx_pair(tmp_path / "b", *new_items(300, seed=12))])
    make_split(locate(params.data, data_root), params.data, paths.split)
    second = json.loads(paths.split.read_text())

    assert first["val_indices"] == second["val_indices"] == base["val_indices"]
    assert second["increments"][0] == first["increments"][0]
    held_out = sum(inc["val_size"] for inc in second["increments"])
    assert 0.1 < held_out / 600 < 0.3  # data.val_fraction 0.2, by content hash
    assert first["dataset_digest"] != base["dataset_digest"] != second["dataset_digest"]


def test_validation_by_content_hash_is_a_pure_function_near_the_fraction():
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    share = np.mean([in_validation(h, 0.2) for h in hashes])
    assert abs(share - 0.2) < 0.01
    assert [in_validation(h, 0.2) for h in hashes[:100]] == [in_validation(h, 0.2) for h in hashes[:100]]


def test_increments_join_training_and_validation_and_the_recent_slice(params, files, data_root, paths, tmp_path):
    import torch

    make_split(files, params.data, paths.split)
    before = load_device_data(files, paths.split, torch.device("cpu"))
    assert before.recent is None
    report = add_items(params, data_root, [write_idx_pair(tmp_path / "a", *new_items(200, seed=5))])
    files = locate(params.data, data_root)
    make_split(files, params.data, paths.split)
    after = load_device_data(files, paths.split, torch.device("cpu"))
    assert len(after.train) + len(after.val) == len(before.train) + len(before.val) + report.accepted
    assert len(after.recent) == json.loads(paths.split.read_text())["increments"][0]["val_size"] > 0
    assert torch.equal(after.train.x[:len(before.train)], before.train.x)  # the base part, unchanged
    assert torch.equal(after.val.x[len(before.val):], after.recent.x)


def test_the_gate_refuses_copies_and_near_copies_and_says_why(params, files, data_root, tmp_path):
    train_images = read_idx(files.paths["train-images"], 3)
    test_images = read_idx(files.paths["test-images"], 3)
    fresh, fresh_labels = new_items(20, seed=7)
    dimmed = (test_images[3] * 0.8).astype(np.uint8)
    images = np.concatenate([fresh, train_images[:1], test_images[:1], dimmed[None], fresh[:1]])
    labels = np.concatenate([fresh_labels, [1, 2, 3, fresh_labels[0]]]).astype(np.uint8)
    source = write_idx_pair(tmp_path / "batch", images, labels)
    before = hashlib.sha256(source.read_bytes()).hexdigest()

    report = add_items(params, data_root, [source])

    reasons = {r["origin"].rsplit(" ", 1)[-1]: r["reason"] for r in report.refused}
    assert reasons["20"] == "exact duplicate of training image 0"
    assert reasons["21"] == "exact duplicate of test image 0"
    assert reasons["22"].startswith("near-duplicate of test image 3 (perceptual-hash distance")
    assert reasons["23"].startswith("exact duplicate of") and "in this batch" in reasons["23"]
    assert report.accepted == 20 and len(report.refused) == 4
    manifest = json.loads((Path(report.directory) / "manifest.json").read_text())
    assert manifest["counts"] == {"offered": 24, "accepted": 20, "refused": 4}
    assert manifest["refused"] == report.refused and len(manifest["items"]) == 20
    assert sum(manifest["classes"].values()) == 20
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # sources are never changed

    again = add_items(params, data_root, [source])  # the same batch again: nothing new in it
    assert again.increment is None and len(again.refused) == 24
    assert "increment" in again.refused[0]["reason"]


def test_pictures_are_prepared_as_the_service_prepares_them_and_bad_ones_listed(params, files, data_root, tmp_path):
    from pictures.imaging import to_model_input

    fresh, labels = new_items(6, seed=9)
    folder = tmp_path / "folder"
    for i, (image, label) in enumerate(zip(fresh, labels)):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - image).resize((56, 56)).convert("RGB").save(folder / str(int(label)) / f"{i}.png")
    (folder / "12").mkdir()
    Image.fromarray(fresh[0]).save(folder / "12" / "x.png")
    (folder / "3").mkdir(exist_ok=True)
    (folder / "3" / "notes.txt").write_text("hello")
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG garbage")
    Image.new("L", (30, 30), 255).save(folder / "3" / "blank.png")

    candidates = read_sources([folder], CLASSES, SHAPE, Limits())
    usable = [c for c in candidates if c.refused is None]
    assert len(usable) == 6
    first = next(c for c in usable if c.origin.endswith("/0.png"))
    expected = to_model_input(np.asarray(Image.open(folder / str(int(labels[0])) / "0.png").convert("L")))
    assert np.array_equal(first.pixels, np.round(expected * 255).astype(np.uint8))
    reasons = {Path(c.origin).name: c.refused for c in candidates if c.refused}
    assert reasons["x.png"].startswith("label '12' is not one of the dataset's classes")
    assert reasons["notes.txt"].startswith("not a picture")
    assert reasons["broken.png"].startswith("not an image") or reasons["broken.png"].startswith("unreadable")
    assert reasons["blank.png"].startswith("no ink")


def test_csv_and_idx_sources_refuse_what_does_not_fit(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\nmissing.png,3\na.png\n")
    reasons = [c.refused for c in read_sources([listing], CLASSES, SHAPE, Limits())]
    assert reasons == ["missing.png: no such file", "1 columns (expected path,label)"]

    images = write_idx_pair(tmp_path / "idx", np.zeros((3, 14, 14), np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(MnistflowError, match="images are 14x14, the dataset's are 28x28"):
        read_sources([images], CLASSES, SHAPE, Limits())
    short = write_idx_pair(tmp_path / "short", np.ones((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(MnistflowError, match="3 images but .* has 2 labels"):
        read_sources([short], CLASSES, SHAPE, Limits())
    many = write_idx_pair(tmp_path / "many", np.ones((5, 28, 28), np.uint8), np.zeros(5, np.uint8))
    with pytest.raises(MnistflowError, match="more than 4 items in one intake"):
        read_sources([many], CLASSES, SHAPE, Limits(items=4))
    with pytest.raises(MnistflowError, match="no such file or folder"):
        read_sources([tmp_path / "nowhere"], CLASSES, SHAPE, Limits())


def test_class_names_match_in_any_case_and_punctuation():
    fashion = class_labels("fashion-mnist")
    assert class_index("T-shirt_top", fashion) == 0 and class_index("ankle boot", fashion) == 9
    assert class_index("7", fashion) == 7 and class_index("10", fashion) is None
    assert class_index("", fashion) is None and class_index("boots", fashion) is None


def test_a_killed_intake_leaves_no_partial_increment(params, files, data_root, tmp_path, monkeypatch):
    source = write_idx_pair(tmp_path / "a", *new_items(30, seed=21))
    real_rename = os.rename

    def killed(*args):
        raise KeyboardInterrupt  # the moment before the increment would appear

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        add_items(params, data_root, [source])
    monkeypatch.setattr(os, "rename", real_rename)
    assert list_increments(files.directory) == ()
    assert locate(params.data, data_root).digest == files.digest
    assert list((data_root / ".intake").glob("custom-*"))  # the scratch copy, outside the dataset
    report = add_items(params, data_root, [source])
    assert report.accepted == 30 and not list((data_root / ".intake").glob("custom-*"))


def test_retrain_waits_for_enough_new_items_and_reports_staleness(params, files, data_root, tmp_path):
    from flows.retrain import skip_reason, staleness  # Prefect: imported by this test alone

    champion = {"fingerprint": {"data": "old", "params": "p", "code": "c"}, "increments": []}
    record = {"fingerprint": {"data": "new", "params": "p", "code": "c"}}
    assert staleness(files, 14)["message"].startswith("no data was ever added")
    add_items(params, data_root, [write_idx_pair(tmp_path / "a", *new_items(40, seed=41))],
        time="2026-11-01T00:00:00.000+00:00")
    files = locate(params.data, data_root)
    assert "40 new items since the champion, fewer than min_new_items 100" in skip_reason(champion, record, files, 100)
    assert skip_reason(champion, record, files, 40) is None
    other_params = {"fingerprint": {"data": "new", "params": "q", "code": "c"}}
    assert skip_reason(champion, other_params, files, 100) is None  # a params change always trains
    stale = staleness(files, 14)
    assert stale["stale"] and stale["message"].startswith("no new data for")
    assert not staleness(files, 10_000)["stale"]


def test_gate_of_a_dataset_knows_its_increments(params, files, data_root, tmp_path):
    report = add_items(params, data_root, [write_idx_pair(tmp_path / "a", *new_items(10, seed=51))])
    gate = Gate.of(locate(params.data, data_root))
    assert f"increment {report.increment}" in next(v for v in gate.known.values() if "increment" in v)


# -- versions and rollback ---------------------------------------------------------------------------

def fake_run(folder: Path, content: bytes) -> RunPaths:
    run = RunPaths(folder)
    folder.mkdir(parents=True)
    run.model.write_bytes(content)
    run.metrics.write_text(json.dumps({"test": {"accuracy": 0.9}}))
    run.evaluation.write_text("{}")
    run.card.write_text(f"card of {content!r}")
    return run


def test_every_promotion_keeps_a_version_and_rollback_puts_one_back(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    for i in (1, 2, 3):
        registry.promote(fake_run(tmp_path / f"run{i}", f"model {i}".encode()), reg,
                         {"run_id": f"r{i}", "time": registry.now(), "metrics": {"test": {"accuracy": i / 10}}})
    assert versions.version_numbers(reg) == [1, 2, 3]
    assert json.loads(reg.champion_record.read_text())["version"] == 3
    rows = versions.list_versions(reg)
    assert [r["serving"] for r in rows] == [False, False, True] and rows[0]["test_accuracy"] == 0.1

    event = registry.rollback(reg, None, "a bad week", {"flow_run_id": "f1"})
    assert (event["from_version"], event["to_version"]) == (3, 2)
    assert reg.champion_model.read_bytes() == b"model 2" and reg.champion_card.read_text() == "card of b'model 2'"
    champion = registry.read_champion(reg)  # its sha256 checks out
    assert champion["version"] == 2 and champion["rolled_back"]["reason"] == "a bad week"
    record = json.loads(sorted(reg.runs.glob("*.json"))[-1].read_text())
    assert record["source"] == "rollback" and record["by"] == {"flow_run_id": "f1"}

    registry.rollback(reg, 3, "it was fine", {})
    assert reg.champion_model.read_bytes() == b"model 3"
    with pytest.raises(MnistflowError, match="no version 9 .*versions: 1, 2, 3"):
        registry.rollback(reg, 9, "", {})
    with pytest.raises(MnistflowError, match="already the champion"):
        registry.rollback(reg, 3, "", {})
    registry.rollback(reg, 1, "", {})
    with pytest.raises(MnistflowError, match="no earlier version"):
        registry.rollback(reg, None, "", {})


def test_a_champion_from_before_versions_is_kept_before_it_is_replaced(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    reg.champion.mkdir(parents=True)
    reg.champion_model.write_bytes(b"old champion")
    reg.champion_record.write_text(json.dumps({"run_id": "old", "model_sha256": hashlib.sha256(b"old champion")
                                               .hexdigest()}))
    registry.promote(fake_run(tmp_path / "run", b"new"), reg, {"run_id": "new", "time": registry.now()})
    assert versions.version_numbers(reg) == [1, 2]
    assert (versions.versions_dir(reg) / "1" / "model.pt").read_bytes() == b"old champion"
    registry.rollback(reg, None, "", {})
    assert reg.champion_model.read_bytes() == b"old champion"


def test_a_damaged_version_is_never_installed(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    for i in (1, 2):
        registry.promote(fake_run(tmp_path / f"run{i}", f"m{i}".encode()), reg, {"run_id": str(i), "time": registry.now()})
    (versions.versions_dir(reg) / "1" / "model.pt").write_bytes(b"tampered")
    with pytest.raises(MnistflowError, match="not the model recorded for version 1"):
        registry.rollback(reg, 1, "", {})
    assert reg.champion_model.read_bytes() == b"m2"


# -- warm start ----------------------------------------------------------------------------------------

def _session(params, files, run):
    from mnistflow.device import select_device
    from mnistflow.session import open_session

    make_split(files, params.data, run.split)
    return open_session(params, files, run, select_device("cpu"))


def test_warm_start_fine_tunes_the_champion_and_records_which(dataset, files, workdir):
    from mnistflow import atomic
    from mnistflow.checkpoints import load_checkpoint, load_model
    from mnistflow.starting_point import WarmStart
    from mnistflow.train import quiet, train_all

    directory, checksums = dataset
    scratch = validate(tiny_params(directory, checksums))
    champion_run = RunPaths(workdir / "champion")
    train_all(scratch, _session(scratch, files, champion_run), files, champion_run, quiet)
    start = WarmStart(champion_run.model, atomic.sha256_of(champion_run.model))

    warm = validate(tiny_params(directory, checksums, train={"warm_stages": [{"epochs": 1, "lr": 0.05}]})).warm_started()
    assert warm.digest() != scratch.digest()
    run = RunPaths(workdir / "warm")
    session = _session(warm, files, run)
    train_all(warm, session, files, run, quiet, warm_start=start)
    history = run.history.read_text().splitlines()[1:]
    assert len(history) == 1  # train.warm_stages, not train.stages
    champion_acc = float(champion_run.history.read_text().splitlines()[-1].split(",")[-1])
    assert float(history[0].split(",")[-1]) >= champion_acc - 0.02  # it starts where the champion is
    assert load_checkpoint(run.last_checkpoint)["warm_start"] == start.sha256
    assert load_model(run.model)[1]["warm_start"] == start.sha256
    assert "warm_start" not in load_model(champion_run.model)[1]  # a run from scratch carries no such key

    with pytest.raises(MnistflowError, match="^warm start: params that fine-tune the champion need the champion"):
        train_all(warm, session, files, RunPaths(workdir / "none"), quiet)
    wide = validate(tiny_params(directory, checksums, model={"hidden": [24]})).warm_started()
    with pytest.raises(MnistflowError, match=r"^warm start: the champion .* these params build"):
        train_all(wide, _session(wide, files, RunPaths(workdir / "wide")), files, RunPaths(workdir / "wide"),
                  quiet, warm_start=start)


def test_warm_stages_change_no_digest_of_a_run_from_scratch(params):
    raw = params.model_dump(mode="json")
    raw["train"]["warm_stages"] = [{"epochs": 7, "lr": 0.3}]
    assert validate(raw).digest() == params.digest()
    assert validate(raw).warm_started().digest() != params.digest()


# -- property tests of intake's parsers -----------------------------------------------------------------



@given(st.text(max_size=30))
def test_a_label_is_a_class_or_none_whatever_the_text(text):
    for classes in (CLASSES, class_labels("fashion-mnist"), class_labels("kmnist")):
        index = class_index(text, classes)
        assert index is None or 0 <= index < len(classes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                         max_size=4), max_size=8))
def test_any_csv_yields_a_reason_for_every_row_it_cannot_use(tmp_path_factory, rows):
    import csv

    folder = tmp_path_factory.mktemp("csv")
    listing = folder / "list.csv"
    with open(listing, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    candidates = read_sources([listing], CLASSES, SHAPE, Limits())  # never a traceback
    assert all(c.refused and c.pixels is None for c in candidates)  # no row names a real picture
    assert len(candidates) <= len(rows)


def test_a_params_file_cannot_ask_for_a_warm_start(dataset, workdir):
    """Warm starting is retraining's choice (its warm_start), so `dvc repro` and the train
    flow never need a champion: a params file asking for one is refused in one line."""
    from mnistflow.params import load_params
    from tests.helpers import write_params

    path = write_params(workdir / "params.yaml", tiny_params(*dataset, train={"init": "champion"}))
    with pytest.raises(MnistflowError) as refused:
        load_params(path)
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{path}: train.init: 'champion': warm starting is retraining's")
    assert "python -m flows.retrain --warm-start" in line


def test_intake_moves_the_inbox_items_it_read_to_taken(params, files, data_root, tmp_path):
    from lifecycle.intake import take_from_inbox

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fresh, labels = new_items(3, seed=61)
    for i, (image, label) in enumerate(zip(fresh, labels)):
        Image.fromarray(255 - image).resize((56, 56)).save(inbox / f"item{i}.png")
        (inbox / f"item{i}.json").write_text(json.dumps({"label": str(int(label))}))
    (inbox / "broken.json").write_text("{")
    candidates = read_sources([], CLASSES, SHAPE, Limits(), inbox=inbox)
    assert len(candidates) == 4 and candidates[0].refused.startswith("not a feedback record")
    report = intake(params.data.dataset, lambda: locate(params.data, data_root), data_root, candidates,
                    [str(inbox)], "2026-12-01T00:00:00.000+00:00")
    taken = take_from_inbox(inbox, candidates, report.increment)
    assert sorted(p.name for p in inbox.iterdir()) == ["taken"]
    assert len(list(taken.iterdir())) == 7  # three pictures with their records, and the broken record
