"""Staged training, checkpoints, evaluation and plots on small generated data."""

import json

import pytest
import torch

from mnistflow.download import download
from mnistflow.errors import MnistflowError, NonFiniteLossError
from mnistflow.evaluate import evaluate
from mnistflow.loaders import build_splits
from mnistflow.params import validate
from mnistflow.paths import Outputs
from mnistflow.plots import make_plots
from mnistflow.split import make_split, read_split
from mnistflow.train import configure_determinism, learning_rate, train_stage
from models import load_checkpoint, load_model
from tests.helpers import tiny_params


def prepare(params):
    configure_determinism(1)
    files = download(params.data)
    split = make_split(files, params.data, Outputs().split)
    train_idx, val_idx, _ = read_split(split, files)
    return files, build_splits(files, train_idx, val_idx, torch.device("cpu"), params.data.normalize)


def train_all(params, files, splits):
    for i in range(len(params.train.stages)):
        train_stage(params, splits, torch.device("cpu"), files.digest, i)


def test_stages_train_checkpoint_evaluate_and_plot(workdir, params):
    files, splits = prepare(params)
    out = Outputs()
    train_stage(params, splits, torch.device("cpu"), files.digest, 0)
    state = load_checkpoint(out.last_checkpoint)
    assert (state["completed_epochs"], state["stage"], state["stage_epoch"]) == (2, 1, 2)
    assert {"model", "optimizer", "rng", "history", "training_digest", "data_digest"} <= set(state)
    assert not out.model.exists()  # only the last stage exports the model
    train_stage(params, splits, torch.device("cpu"), files.digest, 1)
    history = out.history.read_text().splitlines()
    assert history[0].startswith("epoch,stage,stage_epoch,lr,train_loss,val_loss,val_accuracy")
    assert [line.split(",")[1] for line in history[1:]] == ["1", "1", "2", "2"]

    metrics = evaluate(params, splits, files, torch.device("cpu"))
    on_disk = json.loads(out.metrics.read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for split in ("val", "test"):
        assert 0.0 <= on_disk[split]["accuracy"] <= 1.0 and on_disk[split]["loss"] > 0
    assert on_disk["test"]["accuracy"] > 0.5  # the generated classes are learnable
    assert sum(map(sum, on_disk["confusion_matrix"]["matrix"])) == on_disk["dataset"]["test_size"] == 200
    assert on_disk["dataset"]["digest"] == files.digest and on_disk["params_digest"] == params.training_digest()
    assert {"torch", "numpy", "python"} <= set(on_disk["versions"])
    assert on_disk["device"]["name"] == "cpu" and len(out.predictions.read_text().splitlines()) == 201

    model, info = load_model(out.model)
    assert info["architecture"]["hidden"] == [16]
    assert model(splits.test.x[:3]).shape == (3, 10)
    for path in make_plots(out, params.plot):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_mid_stage_gives_the_same_result(workdir, params):
    files, splits = prepare(params)
    train_all(params, files, splits)
    uninterrupted = Outputs().model.read_bytes()
    history = Outputs().history.read_text()

    # Rewind to the checkpoint after epoch 3 (mid stage 2) by replaying just that far.
    short = validate(tiny_params(params.data.mirrors[0], params.data.checksums,
                                 train={"stages": [{"epochs": 2, "lr": 0.5}, {"epochs": 1, "lr": 0.1}]}))
    Outputs().last_checkpoint.unlink()
    train_all(short, files, splits)
    state = load_checkpoint(Outputs().last_checkpoint)
    state["training_digest"] = params.training_digest()  # pretend the long run stopped here
    torch.save(state, Outputs().last_checkpoint)
    train_stage(params, splits, torch.device("cpu"), files.digest, 1)
    assert Outputs().history.read_text() == history
    assert Outputs().model.read_bytes() == uninterrupted


def test_checkpoint_from_other_params_is_not_resumed(workdir, params, caplog):
    files, splits = prepare(params)
    train_all(params, files, splits)
    other = validate({**params.model_dump(), "train": {**params.train.model_dump(), "seed": 5}})
    caplog.set_level("INFO")
    train_all(other, files, splits)
    assert "made with other params or data" in caplog.text
    assert load_checkpoint(Outputs().last_checkpoint)["training_digest"] == other.training_digest()


def test_later_stage_without_earlier_one_is_refused(workdir, params):
    files, splits = prepare(params)
    with pytest.raises(MnistflowError, match="stage 2 cannot start"):
        train_stage(params, splits, torch.device("cpu"), files.digest, 1)


def test_non_finite_loss_names_stage_and_epoch_and_keeps_good_outputs(workdir, params):
    files, splits = prepare(params)
    train_all(params, files, splits)
    before = {p: p.read_bytes() for p in (Outputs().model, Outputs().history, Outputs().last_checkpoint)}
    exploding = validate(tiny_params(params.data.mirrors[0], params.data.checksums,
                                     train={"stages": [{"epochs": 2, "lr": 1e30}]}))
    with pytest.raises(NonFiniteLossError, match=r"stage 1 epoch 1: training loss is (nan|inf)"):
        train_stage(exploding, splits, torch.device("cpu"), files.digest, 0)
    assert {p: p.read_bytes() for p in before} == before


def test_corrupt_or_missing_checkpoint_is_a_clear_error(workdir, params):
    files, splits = prepare(params)
    with pytest.raises(MnistflowError, match="outputs/model.pt: no such checkpoint"):
        evaluate(params, splits, files, torch.device("cpu"))
    Outputs().checkpoints.mkdir(parents=True)
    Outputs().last_checkpoint.write_bytes(b"not a zip at all")
    with pytest.raises(MnistflowError, match="last.pt: corrupt or not a checkpoint.*delete it"):
        train_stage(params, splits, torch.device("cpu"), files.digest, 0)


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
