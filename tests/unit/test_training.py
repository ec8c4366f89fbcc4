"""Staged training, checkpoints, evaluation and plots on small generated data."""

import json

import pytest
import torch

from mnistflow.checkpoints import load_checkpoint, load_model
from mnistflow.errors import MnistflowError, NonFiniteLossError
from mnistflow.evaluate import evaluate
from mnistflow.params import validate
from mnistflow.plots import make_plots
from mnistflow.train import learning_rate, train_stage
from tests.helpers import cpu_runtime, prepare, tiny_params, train_every_stage


def test_stages_train_checkpoint_evaluate_and_plot(workdir, params, paths):
    files, splits = prepare(params, workdir, paths)
    out = paths
    train_stage(params, splits, cpu_runtime(), files, 0, out)
    state = load_checkpoint(out.last_checkpoint)
    assert (state["completed_epochs"], state["stage"], state["stage_epoch"]) == (2, 1, 2)
    assert {"model", "optimizer", "history", "params_digest", "data_digest"} <= set(state)
    assert "rng" not in state  # each epoch is seeded from (seed, epoch): no RNG state to restore
    assert not out.model.exists()  # only the last stage exports the model
    train_stage(params, splits, cpu_runtime(), files, 1, out)
    history = out.history.read_text().splitlines()
    assert history[0].startswith("epoch,stage,stage_epoch,lr,train_loss,val_loss,val_accuracy")
    assert [line.split(",")[1] for line in history[1:]] == ["1", "1", "2", "2"]

    metrics = evaluate(params, splits, files, cpu_runtime(), out)
    on_disk = json.loads(out.evaluation.read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    # metrics.json, DVC's metrics file, is only the numbers people compare
    assert json.loads(out.metrics.read_text()) == {split: {"accuracy": on_disk[split]["accuracy"], "loss": on_disk[
        split]["loss"]} for split in ("val", "test")}
    for split in ("val", "test"):
        assert 0.0 <= on_disk[split]["accuracy"] <= 1.0 and on_disk[split]["loss"] > 0
    assert on_disk["test"]["accuracy"] > 0.5  # the generated classes are learnable
    assert sum(map(sum, on_disk["confusion_matrix"]["matrix"])) == on_disk["dataset"]["test_size"] == 200
    assert on_disk["dataset"]["digest"] == files.digest and on_disk["params_digest"] == params.digest()
    assert {"torch", "numpy", "python"} <= set(on_disk["versions"])
    assert on_disk["device"]["name"] == "cpu" and len(out.predictions.read_text().splitlines()) == 201

    model, info = load_model(out.model)
    assert info["architecture"]["hidden"] == [16]
    assert model(splits.test.x[:3]).shape == (3, 10)
    for path in make_plots(out, params.plot):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_mid_stage_gives_the_same_result(workdir, params, paths):
    files, splits = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    uninterrupted = paths.model.read_bytes()
    history = paths.history.read_text()

    # Rewind to the checkpoint after epoch 3 (mid stage 2) by replaying just that far.
    short = validate(tiny_params(params.data.mirrors[0], params.data.checksums,
                                 train={"stages": [{"epochs": 2, "lr": 0.5}, {"epochs": 1, "lr": 0.1}]}))
    paths.last_checkpoint.unlink()
    train_every_stage(short, files, paths)
    state = load_checkpoint(paths.last_checkpoint)
    state["params_digest"] = params.digest()  # pretend the long run stopped here
    torch.save(state, paths.last_checkpoint)
    train_every_stage(params, files, paths)  # stage 1 is complete; stage 2 resumes at its 2nd epoch
    assert paths.history.read_text() == history
    assert paths.model.read_bytes() == uninterrupted


def test_checkpoint_from_other_params_is_not_resumed(workdir, params, paths, caplog):
    files, splits = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    other = validate({**params.model_dump(), "train": {**params.train.model_dump(), "seed": 5}})
    caplog.set_level("INFO")
    train_every_stage(other, files, paths)
    assert "made with other params or data" in caplog.text
    assert load_checkpoint(paths.last_checkpoint)["params_digest"] == other.digest()


def test_later_stage_without_earlier_one_is_refused(workdir, params, paths):
    files, splits = prepare(params, workdir, paths)
    with pytest.raises(MnistflowError, match="stage 2 cannot start"):
        train_stage(params, splits, cpu_runtime(), files, 1, paths)


def test_non_finite_loss_names_stage_and_epoch_and_keeps_good_outputs(workdir, params, paths):
    files, splits = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    before = {p: p.read_bytes() for p in (paths.model, paths.history, paths.last_checkpoint)}
    exploding = validate(tiny_params(params.data.mirrors[0], params.data.checksums,
                                     train={"stages": [{"epochs": 2, "lr": 1e30}]}))
    with pytest.raises(NonFiniteLossError, match=r"stage 1 epoch 1: training loss is (nan|inf) .*; no epoch had "
                                                 "finished, so nothing was written"):
        train_stage(exploding, splits, cpu_runtime(), files, 0, paths)
    assert {p: p.read_bytes() for p in before} == before


def test_corrupt_or_missing_checkpoint_is_a_clear_error(workdir, params, paths):
    files, splits = prepare(params, workdir, paths)
    with pytest.raises(MnistflowError, match="outputs/model.pt: no such checkpoint"):
        evaluate(params, splits, files, cpu_runtime(), paths)
    paths.checkpoints.mkdir(parents=True)
    paths.last_checkpoint.write_bytes(b"not a zip at all")
    with pytest.raises(MnistflowError, match="last.pt: corrupt or not a checkpoint.*delete it"):
        train_stage(params, splits, cpu_runtime(), files, 0, paths)


def test_checkpoints_refuse_pickled_code(workdir, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "mnistflow.model/1", "payload": Evil()}, path)
    with pytest.raises(MnistflowError, match="corrupt or not a checkpoint"):
        load_model(path)


def test_learning_rate_schedules():
    assert learning_rate("constant", 0.5, 7, 10) == 0.5
    assert learning_rate("cosine", 1.0, 0, 11) == pytest.approx(1.0)
    assert learning_rate("cosine", 1.0, 10, 11) == pytest.approx(0.0)
    peak = max(learning_rate("onecycle", 1.0, s, 100) for s in range(100))
    assert peak == pytest.approx(1.0, rel=0.05)
    assert learning_rate("onecycle", 1.0, 0, 100) == pytest.approx(1 / 25)


def test_history_records_the_rate_applied_at_each_epochs_last_step(workdir, paths, dataset):
    import csv
    import math

    params = validate(tiny_params(*dataset, train={"stages": [{"epochs": 2, "lr": 0.5, "schedule": "onecycle"}]}))
    files, data = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    steps = math.ceil(len(data.train) / params.train.batch_size)
    with open(paths.history, newline="") as fh:
        recorded = [float(row["lr"]) for row in csv.DictReader(fh)]
    assert recorded == [learning_rate("onecycle", 0.5, epoch * steps + steps - 1, 2 * steps) for epoch in (0, 1)]
    assert recorded[1] < 0.5 / 100  # the annealed rate, not the stage's peak


def test_judge_scores_each_model_on_the_runs_tensors_under_its_own_scaling(workdir, params, paths, tmp_path):
    from lifecycle.registry import judge
    from lifecycle.registry_paths import RegistryPaths
    from mnistflow.paths import RunPaths
    from mnistflow.scoring import evaluate_tensors
    from mnistflow.tensors import load_device_data

    files, plain = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    registry = RegistryPaths(tmp_path / "registry")
    registry.champion.mkdir(parents=True)
    registry.champion_model.write_bytes(paths.model.read_bytes())  # a champion on unnormalised inputs

    normalized = validate({**params.model_dump(), "data": {**params.data.model_dump(), "normalize": True}})
    challenger = RunPaths(tmp_path / "challenger")
    files, data = prepare(normalized, workdir, challenger)
    train_every_stage(normalized, files, challenger)
    assert data.std != 1.0
    decision = judge(challenger.model, registry, data, margin=0.0)

    champion_model, _ = load_model(registry.champion_model)
    assert decision.champion_accuracy == evaluate_tensors(champion_model, plain.test)[1]
    challenger_model, _ = load_model(challenger.model)
    own = load_device_data(files, challenger.split, torch.device("cpu"), normalize=True)
    assert decision.challenger_accuracy == evaluate_tensors(challenger_model, own.test)[1]


@pytest.mark.parametrize("challenger, champion, margin, promote", [
    (0.95, None, 0.5, True),          # no champion: any challenger is promoted
    (0.95, 0.95, 0.0, True),          # as good as the champion: promoted at margin 0
    (0.9501, 0.95, 0.002, False),     # better, but not by the margin
    (0.9521, 0.95, 0.002, True),      # better by the margin
    (0.949, 0.95, -0.002, True),      # a negative margin tolerates a small loss
    (0.947, 0.95, -0.002, False),     # ... and no more
])
def test_decide_promotes_at_the_champions_accuracy_plus_the_margin(challenger, champion, margin, promote):
    from lifecycle.registry import decide

    decision = decide(challenger, champion, margin)
    assert decision.promote is promote
    assert (decision.challenger_accuracy, decision.champion_accuracy) == (challenger, champion)
    if champion is not None:
        assert f"margin {margin:+.4%}" in decision.reason
        assert decision.reason.endswith("champion kept") is (not promote)


def test_a_checkpoint_made_by_other_training_code_is_not_resumed(workdir, params, paths, caplog):
    files, splits = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    model = paths.model.read_bytes()
    state = load_checkpoint(paths.last_checkpoint)
    state["code_digest"] = "0" * 64  # as if train.py had been edited since
    torch.save(state, paths.last_checkpoint)
    caplog.set_level("INFO")
    train_every_stage(params, files, paths)
    assert "made by other training code; not resuming" in caplog.text
    assert "training was already complete" not in caplog.text
    assert paths.model.read_bytes() == model  # trained again from scratch: the same run, byte for byte
    caplog.clear()
    train_every_stage(params, files, paths)  # now it is this code's: nothing to train, and it says so
    assert "training was already complete (4 epochs" in caplog.text
