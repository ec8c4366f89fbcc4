"""The training levers of issue 25: a moving average of the weights, label smoothing,
test-time flips, and the choice of torch.compile mode (CUDA graphs on CUDA only)."""

from __future__ import annotations

import math

import pytest
import torch

from mnistflow.checkpoints import load_checkpoint, load_model
from mnistflow.device import compile_mode, training_forward
from mnistflow.errors import MnistflowError
from mnistflow.params import validate
from mnistflow.train import architecture
from mnistflow.weight_average import WeightAverage
from models import network
from tests.helpers import prepare, tiny_params, train_every_stage

LEVERS = {"ema": 0.9, "label_smoothing": 0.1}


def test_levers_at_their_defaults_leave_every_digest_and_architecture_as_it_was():
    assert validate({}).digest() == "475016366f975ff6c394ae7a05e0518ea269a120ac651b5c4d7e0f6d1ae93e3b"
    explicit = {"train": {"ema": None, "label_smoothing": 0.0}, "model": {"kind": "cnn", "test_flip": False}}
    assert validate(explicit).digest() == validate({"model": {"kind": "cnn"}}).digest()
    assert "test_flip" not in architecture(validate({"model": {"kind": "cnn"}}).model, (28, 28))
    for changed in ({"train": {"ema": 0.999}}, {"train": {"label_smoothing": 0.1}},
                    {"model": {"test_flip": True}}, {"train": {"compile": "reduce-overhead"}}):
        assert validate(changed).digest() != validate({}).digest(), changed


@pytest.mark.parametrize("section, field, value", [
    ("train", "ema", 1.0), ("train", "ema", 0.0), ("train", "label_smoothing", 1.0),
    ("train", "label_smoothing", -0.1), ("train", "compile", "max-autotune"), ("model", "test_flip", "sometimes"),
])
def test_bad_lever_values_are_refused_by_name(section, field, value):
    with pytest.raises(MnistflowError, match=f"{section}.{field}"):
        validate({section: {field: value}})


def test_the_average_ramps_up_then_follows_each_update_at_its_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)  # the first update keeps 2/11 of the old weights
    assert torch.allclose(average.model.weight, start + 9 / 11)
    assert average.model.weight.requires_grad is False
    for _ in range(200):
        average.update(model)
    assert average.rate() == 0.9 and torch.allclose(average.model.weight, model.weight)


def test_an_averaged_run_keeps_the_average_and_resumes_to_the_same_bytes(workdir, dataset, paths):
    directory, checksums = dataset
    params = validate(tiny_params(directory, checksums, train=LEVERS))
    files, data = prepare(params, workdir, paths)
    train_every_stage(params, files, paths)
    uninterrupted, history = paths.model.read_bytes(), paths.history.read_text()
    state = load_checkpoint(paths.last_checkpoint)
    averaged, _ = load_model(paths.model)
    assert state["ema"]["updates"] == 4 * math.ceil(len(data.train) / 50)  # one a step, 4 epochs of batches of 50
    weights = averaged.state_dict()  # model.pt holds the average, not the weights as trained
    assert weights.keys() == state["model"].keys()
    assert all(torch.equal(weights[k], state["ema"]["weights"][k]) for k in weights)
    assert not all(torch.equal(weights[k], state["model"][k]) for k in weights)

    short = validate(tiny_params(directory, checksums, train={
        **LEVERS, "stages": [{"epochs": 2, "lr": 0.5}, {"epochs": 1, "lr": 0.1}]}))
    paths.last_checkpoint.unlink()
    train_every_stage(short, files, paths)
    state = load_checkpoint(paths.last_checkpoint)
    state["params_digest"] = params.digest()  # as if the long run had stopped after epoch 3
    torch.save(state, paths.last_checkpoint)
    train_every_stage(params, files, paths)
    assert paths.history.read_text() == history
    assert paths.model.read_bytes() == uninterrupted


def test_label_smoothing_changes_the_loss_trained_on(workdir, dataset, paths):
    directory, checksums = dataset
    plain = validate(tiny_params(directory, checksums))
    smoothed = validate(tiny_params(directory, checksums, train={"label_smoothing": 0.5}))
    files, _ = prepare(plain, workdir, paths)
    losses = []
    for params in (plain, smoothed):
        train_every_stage(params, files, paths)
        losses.append(float(paths.history.read_text().splitlines()[-1].split(",")[4]))
    # With half of each target spread over 10 classes the loss cannot fall below that target's entropy.
    floor = -(0.55 * torch.log(torch.tensor(0.55)) + 9 * 0.05 * torch.log(torch.tensor(0.05))).item()
    assert losses[1] > floor > losses[0]


def test_test_flip_averages_the_mirrored_image_in_eval_mode_only():
    params = validate({"model": {"kind": "cnn", "channels": [4], "kernels": [3], "hidden": [8], "test_flip": True}})
    arch = architecture(params.model, (6, 5))
    assert arch["test_flip"] is True
    net = network(arch)
    x = torch.rand(4, 30)
    images = x.view(4, 1, 6, 5)
    assert torch.allclose(net.train()(x), net._logits(images))
    expected = (net._logits(images) + net._logits(images.flip(-1))) / 2
    assert torch.allclose(net.eval()(x), expected)
    assert torch.allclose(net(x), net(images.flip(-1).reshape(4, 30)), atol=1e-6)  # a mirror answers alike


@pytest.mark.parametrize("setting, device, mode", [
    (False, "cpu", None), (False, "cuda", None),
    (True, "cpu", "default"), (True, "cuda", "default"),
    ("reduce-overhead", "cpu", "default"),  # no CUDA graphs off CUDA
    ("reduce-overhead", "cuda", "reduce-overhead"),
])
def test_the_compile_mode_is_chosen_by_setting_and_device(setting, device, mode):
    assert compile_mode(setting, torch.device(device)) == mode


def test_training_calls_the_network_eagerly_compiled_or_through_cuda_graphs():
    """torch.compile is lazy, so which call training makes is seen without compiling or a GPU."""
    net = torch.nn.Linear(2, 2)
    assert training_forward(net, False, torch.device("cpu")) is net
    compiled = training_forward(net, "reduce-overhead", torch.device("cpu"))
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    graphs = training_forward(net, "reduce-overhead", torch.device("cuda"))
    assert not isinstance(graphs, torch.nn.Module) and callable(graphs)  # marks each step for CUDA graph trees
