import pytest

from mnistflow.errors import MnistflowError
from mnistflow.params import load_params, validate


def test_defaults_are_the_original_recipe():
    p = validate({})
    assert p.data.dataset == "mnist" and p.data.val_fraction == 0.2
    assert p.model.hidden == [32] and p.model.activation == "relu"
    assert p.train.batch_size == 100 and p.train.optimizer.name == "sgd"
    assert [(s.epochs, s.lr) for s in p.train.stages] == [(5, 0.5), (5, 0.1)]
    assert p.device == "auto"


def test_repository_params_yaml_is_valid_and_the_default():
    from tests.helpers import REPO

    assert load_params(REPO / "params.yaml") == validate({})


@pytest.mark.parametrize("raw, field", [
    ({"data": {"dataset": "cifar"}}, "data.dataset"),
    ({"train": {"stages": [{"epochs": 1, "lr": -0.1}]}}, "train.stages.0.lr"),
    ({"train": {"stages": [{"epochs": 1, "lr": 0}]}}, "train.stages.0.lr"),
    ({"train": {"stages": [{"epochs": 0, "lr": 0.1}]}}, "train.stages.0.epochs"),
    ({"train": {"stages": []}}, "train.stages"),
    ({"model": {"hidden": [0]}}, "model.hidden.0"),
    ({"data": {"val_fraction": 0}}, "data.val_fraction"),
    ({"data": {"val_fraction": 1}}, "data.val_fraction"),
    ({"data": {"mirrors": ["ftp://example.org/"]}}, "data.mirrors"),
    ({"device": "tpu"}, "device"),
    ({"train": {"batchsize": 10}}, "train.batchsize"),
    ({"data": {"dataset": "custom"}}, "data"),
])
def test_each_bad_value_is_named(raw, field):
    with pytest.raises(MnistflowError) as info:
        validate(raw, "params.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    assert f"{field}:" in message


def test_every_bad_value_is_named_at_once():
    with pytest.raises(MnistflowError) as info:
        validate({"model": {"hidden": [0]}, "train": {"stages": [{"epochs": 0, "lr": -1}]}})
    for field in ("model.hidden.0", "train.stages.0.epochs", "train.stages.0.lr"):
        assert field in str(info.value)


def test_unreadable_params_files(tmp_path):
    with pytest.raises(MnistflowError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(MnistflowError, match="not valid YAML at line"):
        load_params(bad)


def test_params_digest_ignores_mirrors_and_plots_but_not_lr():
    base = validate({})
    assert validate({"data": {"mirrors": ["/x"]}, "plot": {"dpi": 50}}).digest() == base.digest()
    assert validate({"train": {"stages": [{"epochs": 5, "lr": 0.4}]}}).digest() != base.digest()


def test_every_params_field_is_classified_for_the_digest_exactly_once():
    from mnistflow.params import DIGESTED, DIGESTED_UNLESS_DEFAULT, NOT_DIGESTED, leaf_fields

    classified = [*DIGESTED, *DIGESTED_UNLESS_DEFAULT, *NOT_DIGESTED]
    assert len(classified) == len(set(classified))
    assert sorted(classified) == sorted(leaf_fields()), "a new params field must be put in one digest list"
    defaults = validate({}).model_dump(mode="json")
    for field, default in DIGESTED_UNLESS_DEFAULT.items():  # "unless default" means today's default
        node = defaults
        for part in field.split("."):
            node = node[part]
        assert node == default, field


def test_not_digested_fields_never_move_the_digest_and_digested_ones_do():
    base = validate({}).digest()
    assert validate({"device": "cpu", "plot": {"width": 3.0}}).digest() == base
    for changed in ({"data": {"normalize": True}}, {"train": {"threads": 2}}, {"train": {"compile": True}},
                    {"model": {"padding": "same"}}, {"train": {"optimizer": {"betas": [0.8, 0.9]}}}):
        assert validate(changed).digest() != base, changed
