"""The convolutional network: params, training, resume, old model files, other image sizes, the judge.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_cnn.py.
"""


import pytest
import torch

from lifecycle.registry import judge
from lifecycle.registry_paths import RegistryPaths
from mnistflow.checkpoints import load_model
from mnistflow.device import select_device
from mnistflow.download import download
from mnistflow.errors import MnistflowError
from mnistflow.evaluate import evaluate
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from mnistflow.scoring import evaluate_tensors
from mnistflow.session import open_session
from mnistflow.split import make_split
from mnistflow.train import quiet, train_all
from models import CNN, MLP
from tests.helpers import CNN_MODEL, CNN_TRAIN, tiny_params, write_dataset

# Small, but every part of the CNN is on: two blocks, batch norm, dropout, shifts.


def cnn_params(directory, checksums, **sections):
    return validate(tiny_params(directory, checksums, model=CNN_MODEL, train=CNN_TRAIN, **sections))


def train_run(params, data_root, paths):
    files = download(params.data, data_root)
    make_split(files, params.data, paths.split)
    session = open_session(params, files, paths, select_device(params.device))
    train_all(params, session, files, paths, on_epoch=quiet)
    return files, session


@pytest.mark.parametrize("model, named", [
    ({"channels": [0, 8]}, "model.channels.0"),
    ({"channels": []}, "model.channels"),
    ({"kernels": [29]}, "model.kernels"),
    ({"kernels": [5, 13]}, "model.kernels: kernel 13 of convolution 2 is larger than the 12x12 image"),
    ({"channels": [4, 4, 4, 4], "kernels": [3, 3, 3, 3]}, "model.kernels: kernel 3 of convolution 4"),
    ({"channels": [4, 4, 4], "kernels": [3, 3]}, "model.kernels: 2 kernel sizes for 3 convolutions"),
    ({"batch_norm": "sometimes"}, "model.batch_norm"),
    ({"padding": "full"}, "model.padding"),
    ({"convs_per_block": 0}, "model.convs_per_block"),
    # three valid 5x5s in block 1 leave 16x16, pooled to 8x8; in block 2 the second 5x5 gets 4x4
    ({"convs_per_block": 3, "kernels": [5, 5]}, "model.kernels: kernel 5 of convolution 2 is larger than the 4x4"),
    # "same" keeps 28 -> 14 -> 7 -> 3 -> 1: a fifth block gets a 1x1 image
    ({"padding": "same", "channels": [4] * 5, "kernels": [3] * 5},
     "model.kernels: kernel 3 of convolution 5 is larger than the 1x1 image"),
])
def test_bad_cnn_shapes_are_named_in_one_line(model, named):
    with pytest.raises(MnistflowError) as caught:
        validate({"model": {"kind": "cnn", **model}})
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_cnn_trains_evaluates_and_loads_without_unpickling(workdir, dataset, paths):
    params = cnn_params(*dataset)
    files, session = train_run(params, workdir / "data", paths)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    assert metrics["test"]["accuracy"] > 0.8, metrics["test"]  # the generated classes are learnable

    model, info = load_model(paths.model)  # torch.load(weights_only=True) inside
    assert isinstance(model, CNN) and not model.training
    assert info["architecture"] == {"kind": "cnn", "input_shape": [28, 28], "channels": [4, 8], "kernels": [5, 3],
                                    "hidden": [16], "activation": "relu", "dropout": 0.1, "batch_norm": True,
                                    "padding": "valid", "convs_per_block": 1}
    flat = session.data.test.x[:5]
    assert torch.equal(model(flat), model(flat.view(5, 1, 28, 28)))  # N x 784 and N x 1 x 28 x 28 alike
    assert evaluate_tensors(model, session.data.test)[1] == metrics["test"]["accuracy"]


def test_an_mlp_model_file_from_before_the_cnn_still_loads(tmp_path):
    old = MLP([16])
    payload = {"format": "mnistflow.model/1", "state_dict": old.state_dict(),
               "architecture": {"hidden": [16], "activation": "relu", "dropout": 0.0},  # no kind, no input_shape
               "input_scaling": {"scale": 1 / 255, "mean": 0.0, "std": 1.0}}
    torch.save(payload, tmp_path / "model.pt")
    model, info = load_model(tmp_path / "model.pt")
    assert isinstance(model, MLP)
    x = torch.rand(3, 784)
    assert torch.equal(model(x), old.eval()(x))


def test_a_custom_dataset_of_another_image_size_trains_either_kind(tmp_path):
    mirror = tmp_path / "mirror"
    checksums = write_dataset(mirror, shape=(20, 24))
    for kind, model in (("mlp", {}), ("cnn", {**CNN_MODEL, "kernels": [3, 3]})):
        params = validate(tiny_params(mirror, checksums, model=model, train=CNN_TRAIN))
        paths = RunPaths(tmp_path / kind)
        files, session = train_run(params, tmp_path / "data", paths)
        assert session.data.shape == (20, 24)
        loaded, info = load_model(paths.model)
        assert info["architecture"]["input_shape"] == [20, 24]
        assert evaluate_tensors(loaded, session.data.test)[1] > 0.5


def test_a_cnn_champion_is_judged_against_an_mlp_challenger(tmp_path, dataset):
    mlp = validate(tiny_params(*dataset))
    cnn = cnn_params(*dataset, data={"normalize": True})  # another kind and another input scaling
    champion, challenger = RunPaths(tmp_path / "champion"), RunPaths(tmp_path / "challenger")
    _, cnn_session = train_run(cnn, tmp_path / "data", champion)
    _, mlp_session = train_run(mlp, tmp_path / "data", challenger)
    registry = RegistryPaths(tmp_path / "registry")
    registry.champion.mkdir(parents=True)
    registry.champion_model.write_bytes(champion.model.read_bytes())

    decision = judge(challenger.model, registry, mlp_session.data, margin=0.0)
    cnn_model, _ = load_model(champion.model)
    mlp_model, _ = load_model(challenger.model)
    # Each scored on the same test images, under its own scaling: what it would score in its own run.
    assert decision.champion_accuracy == evaluate_tensors(cnn_model, cnn_session.data.test)[1]
    assert decision.challenger_accuracy == evaluate_tensors(mlp_model, mlp_session.data.test)[1]
    assert decision.promote == (decision.challenger_accuracy >= decision.champion_accuracy)  # margin 0: at least as good


def test_padding_and_convolutions_per_block_follow_the_one_size_rule():
    """models.cnn builds what params.cnn_sizes says, and preflight counts its weights exactly."""
    from mnistflow.params import cnn_sizes
    from mnistflow.preflight import layer_sizes
    from mnistflow.train import architecture
    from models import build_model

    assert cnn_sizes((28, 28), [5, 3], "same") == [((28, 28), (28, 28)), ((14, 14), (14, 14))]
    assert cnn_sizes((28, 28), [5, 3]) == [((28, 28), (24, 24)), ((12, 12), (10, 10))]
    assert cnn_sizes((28, 28), [3, 3], "valid", 2) == [((28, 28), (24, 24)), ((12, 12), (8, 8))]
    for padding in ("valid", "same"):
        for convs in (1, 2):
            params = validate({"model": {"kind": "cnn", "channels": [4, 8], "kernels": [3, 3], "hidden": [16],
                                         "padding": padding, "convs_per_block": convs}})
            net = build_model(architecture(params.model, (28, 28)))
            (_, (height, width)) = cnn_sizes((28, 28), [3, 3], padding, convs)[-1]
            assert net.head[0].in_features == 8 * (height // 2) * (width // 2)
            assert sum(w.numel() for w in net.parameters()) == layer_sizes(params)[0]
            assert net(torch.zeros(3, 784)).shape == (3, 10)


def test_options_added_later_keep_earlier_runs_digests_at_their_defaults():
    """A run made before model.padding and train.augment.flip existed resumes, and its
    champion is not retrained, because the defaults leave its params digest as it was."""
    before = validate({})  # the digest as 70b0c62 (before both options) computed it
    assert before.digest() == "475016366f975ff6c394ae7a05e0518ea269a120ac651b5c4d7e0f6d1ae93e3b"
    assert validate({"train": {"augment": {"flip": True}}}).digest() != before.digest()
    cnn = validate({"model": {"kind": "cnn"}})
    assert cnn.digest() == "72acd5393978969604bebcbb8c8400c65cf4e272fabc70c1bf17be67b3c5217c"
    assert validate({"model": {"kind": "cnn", "padding": "same"}}).digest() != cnn.digest()


def test_random_flip_mirrors_about_half_the_images_and_is_seeded():
    from mnistflow.tensors import random_flip

    x = torch.arange(64 * 4 * 6, dtype=torch.float32).reshape(64, 24)
    flipped = random_flip(x, torch.Generator().manual_seed(1), (4, 6))
    again = random_flip(x, torch.Generator().manual_seed(1), (4, 6))
    assert torch.equal(flipped, again)
    images, out = x.view(64, 4, 6), flipped.view(64, 4, 6)
    mirrored = [torch.equal(o, i.flip(-1)) for i, o in zip(images, out)]
    assert all(m or torch.equal(o, i) for m, i, o in zip(mirrored, images, out))
    assert 16 < sum(mirrored) < 48
