"""ONNX export, the model card, and what promotion carries: on tiny generated data, in this process."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import yaml

from lifecycle.registry_paths import RegistryPaths
from mnistflow import export as export_module
from mnistflow.errors import MnistflowError
from mnistflow.idx import read_idx
from mnistflow.inference import Predictor
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from tests.conftest import run_stages
from tests.helpers import CNN_MODEL, CNN_TRAIN, REPO, custom_dir, tiny_params

NETWORKS = {"mlp": {}, "cnn": {"model": {**CNN_MODEL, "padding": "same", "batch_norm": True}, "train": CNN_TRAIN},
            # test-time mirroring is part of the network, so the ONNX file must do it too
            "cnn-test-flip": {"model": {**CNN_MODEL, "padding": "same", "test_flip": True},
                              "train": {**CNN_TRAIN, "ema": 0.9, "label_smoothing": 0.1}}}


@pytest.fixture(params=list(NETWORKS))
def trained(request, dataset, workdir) -> tuple[RunPaths, object]:
    directory, checksums = dataset
    network = NETWORKS[request.param]
    params = validate(tiny_params(directory, checksums, **network))
    return run_stages(params, workdir / "data", RunPaths(workdir / "outputs")), params


def test_onnx_agrees_with_pytorch_at_any_batch_size_and_the_check_is_in_metrics(trained, workdir):
    import onnx
    import onnxruntime

    paths, params = trained
    predictor = Predictor.load(paths.model)
    session = onnxruntime.InferenceSession(str(paths.onnx), providers=["CPUExecutionProvider"])
    (pixels,) = session.get_inputs()
    assert pixels.name == "pixels" and pixels.shape[1:] == [1, 28, 28] and not isinstance(pixels.shape[0], int)
    images = read_idx(next(custom_dir(workdir / "data").glob("t10k-images*")), 3).astype(np.float32) / 255
    for batch in (1, 7, len(images)):  # the batch dimension is free
        ours = session.run(["logits"], {"pixels": images[:batch, None]})[0]
        theirs = predictor.logits(images[:batch]).numpy()
        assert ours.shape == (batch, 10)
        assert (ours.argmax(1) == theirs.argmax(1)).all()
        assert np.abs(ours - theirs).max() <= 1e-4

    metrics = json.loads(paths.evaluation.read_text())
    check = metrics["onnx"]
    assert check["passed"] and check["images"] == len(images) and check["argmax_agreement"] == 1.0
    assert check["max_abs_logit_diff"] <= check["tolerance"] == 1e-4
    assert check["model_sha256"] == metrics["model"]["sha256"] == predictor.sha256
    proto = onnx.load(str(paths.onnx))  # one self-contained file: no external data beside it
    assert json.loads({p.key: p.value for p in proto.metadata_props}["labels"]) == predictor.labels
    assert sorted(p.name for p in paths.dir.iterdir() if "onnx" in p.name) == ["model.onnx"]


def test_the_model_repository_is_what_triton_loads(trained):
    """config.pbtxt parsed by Triton's own model-config protobuf, and checked against the ONNX file."""
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    paths, _ = trained
    model = paths.model_repository / "mnistflow"
    assert sorted(p.relative_to(paths.model_repository).as_posix() for p in paths.model_repository.rglob("*")) == [
        "mnistflow", "mnistflow/1", "mnistflow/1/model.onnx", "mnistflow/config.pbtxt", "mnistflow/labels.txt"]
    assert (model / "1" / "model.onnx").read_bytes() == paths.onnx.read_bytes()
    config = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "mnistflow" and config.platform == "onnxruntime_onnx" and config.max_batch_size >= 1
    graph = onnx.load(str(paths.onnx)).graph
    for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in declared] == [t.name for t in actual]
        for tensor, value in zip(declared, actual):
            assert model_config_pb2.DataType.Name(tensor.data_type) == "TYPE_FP32"
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param and not dims[0].dim_value  # the batch: free in the file, left out in the config
            assert list(tensor.dims) == [d.dim_value for d in dims[1:]]
    labels = (model / config.output[0].label_filename).read_text().splitlines()
    assert labels == Predictor.load(paths.model).labels and len(labels) == config.output[0].dims[0]


def test_export_is_byte_for_byte_repeatable(trained, workdir):
    paths, params = trained
    first = paths.onnx.read_bytes()
    paths.onnx.unlink()
    export_module.export_onnx(paths, next(custom_dir(workdir / "data").glob("t10k-images*")))
    assert paths.onnx.read_bytes() == first


def test_a_failed_check_writes_nothing(params, workdir, monkeypatch):
    paths = run_stages(params, workdir / "data", RunPaths(workdir / "outputs"))
    for path in (paths.onnx, paths.export_check):
        path.unlink()
    shutil.rmtree(paths.model_repository)
    monkeypatch.setattr(export_module, "TOLERANCE", 0.0)  # no float export is exact to 0.0
    with pytest.raises(MnistflowError, match="model.onnx: not written: onnxruntime disagrees"):
        export_module.export_onnx(paths, next(custom_dir(workdir / "data").glob("t10k-images*")))
    assert not paths.onnx.exists() and not paths.export_check.exists() and not paths.model_repository.exists()
    assert not [p for p in paths.dir.iterdir() if p.name.startswith(".")]  # no temporary left over


def test_without_the_export_extra_the_stage_says_what_to_install(monkeypatch, paths):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: import fails
    with pytest.raises(MnistflowError, match=r"needs onnxruntime: install the export extra"):
        export_module.export_onnx(paths, paths.dir / "unused")


def test_metrics_do_not_claim_a_check_made_for_another_model(params, workdir):
    paths = run_stages(params, workdir / "data", RunPaths(workdir / "outputs"))
    check = json.loads(paths.export_check.read_text())
    assert export_module.recorded_check(paths, check["model_sha256"]) == check
    assert export_module.recorded_check(paths, "0" * 64) is None


def test_export_pending_only_until_these_params_model_is_exported(params, workdir):
    # What decides whether `make run` imports the exporter ahead of time.
    paths = RunPaths(workdir / "outputs")
    assert export_module.export_pending(paths, params.digest())  # nothing trained yet
    run_stages(params, workdir / "data", paths)
    assert not export_module.export_pending(paths, params.digest())
    assert export_module.export_pending(paths, "0" * 64)  # other params: training will replace model.pt
    paths.onnx.write_bytes(b"not this model's export")
    assert export_module.export_pending(paths, params.digest())


def test_model_card_reports_the_run(params, workdir):
    paths = run_stages(params, workdir / "data", RunPaths(workdir / "outputs"))
    card, metrics = paths.card.read_text(), json.loads(paths.evaluation.read_text())
    for heading in ("## Model details", "## Intended use", "## Training and evaluation data", "## Evaluation",
                    "## Limitations", "## How to use"):
        assert heading in card
    assert metrics["dataset"]["digest"] in card and metrics["params_digest"] in card
    assert metrics["model"]["sha256"] in card and metrics["onnx"]["sha256"] in card
    assert f"{metrics['test']['accuracy']:.2%}" in card and f"{metrics['val']['accuracy']:.2%}" in card
    for label, accuracy in metrics["test"]["per_class_accuracy"].items():
        assert accuracy is not None and f"| {label} | {accuracy:.2%} |" in card
    # the most confused pair is the largest off-diagonal cell of the confusion matrix
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    np.fill_diagonal(matrix, -1)
    actual, predicted = np.unravel_index(matrix.argmax(), matrix.shape)
    assert (f"| {actual} | {predicted} | {matrix.max()} |" if matrix.max() > 0
            else "No test image was confused") in card
    # the device, not the seconds: the card is versioned with the model, and seconds vary by run
    assert f"- Trained: on cpu ({metrics['device']['reason']})." in card and "s of training" not in card


def test_dvc_declares_the_model_as_an_artifact():
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        artifacts = {name: a for found in repo.artifacts.read().values() for name, a in found.items()}
    assert artifacts["mnistflow-classifier"].type == "model"
    assert artifacts["mnistflow-classifier"].path == "outputs/model.pt"
    assert artifacts["mnistflow-classifier-onnx"].path == "outputs/model.onnx"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "outputs/model.onnx" in stages["export"]["outs"] and "outputs/export.json" in stages["evaluate"]["deps"]


def test_promotion_carries_the_onnx_file_and_the_card(params, workdir):
    from lifecycle import registry

    paths = run_stages(params, workdir / "data", RunPaths(workdir / "outputs"))
    champion = RegistryPaths(workdir / "registry")
    registry.promote(paths, champion, {"run_id": "test"})
    assert champion.champion_onnx.read_bytes() == paths.onnx.read_bytes()
    assert champion.champion_card.read_text() == paths.card.read_text()
    # a later champion without an export leaves no stale ONNX file beside it
    paths.onnx.unlink()
    registry.promote(paths, champion, {"run_id": "test-2"})
    assert not champion.champion_onnx.exists()


def test_the_onnx_file_says_nothing_of_the_machine_that_made_it(trained):
    """DVC versions model.onnx: no checkout path, no stack trace, in any node."""
    paths, _ = trained
    raw = paths.onnx.read_bytes()
    assert str(REPO).encode() not in raw and b"stack_trace" not in raw


def test_the_exporters_torchvision_lines_are_not_shown(caplog):
    """Without torchvision the exporter warns four times that it skips detection ops no
    network here has (issue 38); other warnings of that logger still show."""
    import logging

    from mnistflow.export import EXPORTER_REGISTRY_LOGGER, quiet_exporter

    quiet_exporter()
    registry = logging.getLogger(EXPORTER_REGISTRY_LOGGER)
    with caplog.at_level(logging.WARNING, logger=EXPORTER_REGISTRY_LOGGER):
        registry.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
        registry.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
