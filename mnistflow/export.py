"""The export step: the trained network as one ONNX file, checked against PyTorch.

``model.onnx`` takes ``pixels`` (N x 1 x H x W, float32 in [0, 1], light on
dark, N free) and returns ``logits`` (N x 10): the input scaling is inside the
graph, so a consumer without PyTorch or this project needs nothing but the
file. It is exported with torch's dynamo exporter (TorchScript, the old path,
is deprecated), then run with onnxruntime on the whole test set beside
PyTorch; only a file whose every argmax agrees and whose logits differ by at
most ``TOLERANCE`` is written, with the check beside it (``export.json``, which
the evaluate step copies into evaluation.json), and again in the model
repository layout that Triton and KServe load (``mnistflow.model_repository``).

The ONNX libraries are the ``export`` extra: ``pip install -e '.[export]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.checkpoint import MODEL_FORMAT, CheckpointError, decode

from . import atomic
from .errors import MnistflowError
from .idx import read_idx
from .inference import Predictor
from .model_repository import MODEL_NAME, config_text, repository_matches, write_model_repository
from .paths import RunPaths
from .private_api import preload_exporter

log = logging.getLogger("mnistflow")

TOLERANCE = 1e-4  # max |logit difference| between onnxruntime and PyTorch
CHECK_CHUNK = 1000
INPUT, OUTPUT = "pixels", "logits"


def onnx_missing() -> str | None:
    """Why ONNX export cannot run here, or None when it can. Finds the packages
    without importing them: a run whose model is already exported imports none."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            return f"ONNX export needs {module}: install the export extra (pip install -e '.[export]')"
    return None


def warm_up_exporter() -> None:
    """Import the exporter's stack ahead (``private_api.preload_exporter``); the flow's
    command line does it on a thread, so the first export costs what the next ones do."""
    if onnx_missing() is None:
        preload_exporter()


class ScaledInput(nn.Module):
    """The network behind its own input scaling, so the graph takes pixels in [0, 1]."""

    def __init__(self, network: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.network, self.mean, self.std = network, float(mean), float(std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network((pixels - self.mean) / self.std)


def onnx_bytes(predictor: Predictor) -> bytes:
    import onnx

    scaling = predictor.record["input_scaling"]
    module = ScaledInput(predictor.model, scaling["mean"], scaling["std"]).eval()
    proto = _onnx_program(module, predictor.input_shape).model_proto
    proto.doc_string = (f"{predictor.record['architecture']['kind']} classifier exported by mnistflow. "
                        f"Input {INPUT}: N x 1 x {predictor.input_shape[0]} x {predictor.input_shape[1]} float32 "
                        f"in [0, 1], light on dark. Output {OUTPUT}: N x {len(predictor.labels)}.")
    for key, value in {"labels": json.dumps(predictor.labels), "source_sha256": predictor.sha256,
                       "architecture": json.dumps(predictor.record["architecture"], sort_keys=True)}.items():
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, key: value})
    # The exporter notes on every node where its code lives (the stack trace, with this
    # checkout's absolute path): debugging aids that would make the file's bytes differ
    # from one clone to the next, and DVC versions the file. The model is the same without.
    for graph_nodes in (proto.graph.node, *(function.node for function in proto.functions)):
        for node in graph_nodes:
            del node.metadata_props[:]
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class _NoTorchvisionOps(logging.Filter):
    """Drops the exporter's "torchvision is not installed. Skipping torchvision::nms" (four
    a run): the torchvision ops are detection ops no mnistflow network has."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


EXPORTER_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


def quiet_exporter() -> None:
    # The exporter's optimizer logs each rewrite at INFO, and its progress may go
    # to stdout: neither is news to a pipeline's user.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    registry = logging.getLogger(EXPORTER_REGISTRY_LOGGER)
    if not any(isinstance(f, _NoTorchvisionOps) for f in registry.filters):
        registry.addFilter(_NoTorchvisionOps())


def _onnx_program(module: nn.Module, shape: tuple[int, int]):
    example = torch.zeros(2, 1, *shape)
    quiet_exporter()
    with contextlib.redirect_stdout(io.StringIO()):
        return torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                 dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}, verbose=False)


def check(model: bytes, predictor: Predictor, images: np.ndarray) -> dict[str, Any]:
    """onnxruntime against PyTorch on every image: argmax agreement and the largest logit gap."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread: its sums in one order, so the recorded difference is the same every run.
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    agree, largest = 0, 0.0
    # PyTorch on one thread too: the flow's process and a DVC stage's pin different
    # thread counts, and the gap recorded in the card must be the same from either.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, len(images), CHECK_CHUNK):
            pixels = (images[start:start + CHECK_CHUNK].astype(np.float32) / 255.0)[:, None]
            ours = session.run([OUTPUT], {INPUT: pixels})[0]
            theirs = predictor.logits(pixels).numpy()
            agree += int((ours.argmax(1) == theirs.argmax(1)).sum())
            largest = max(largest, float(np.abs(ours - theirs).max()))
    finally:
        torch.set_num_threads(threads)
    passed = agree == len(images) and largest <= TOLERANCE
    return {"images": len(images), "argmax_agreement": agree / len(images), "max_abs_logit_diff": largest,
            "tolerance": TOLERANCE, "passed": passed, "onnxruntime": onnxruntime.__version__}


def export_onnx(paths: RunPaths, test_images: Path) -> dict[str, Any]:
    """Write ``model.onnx`` and ``export.json`` for the run's model, or nothing at all."""
    missing = onnx_missing()
    if missing:
        raise MnistflowError(missing)
    predictor = Predictor.load(paths.model)
    done = exported_check(paths, predictor.sha256)
    if done:
        log.info("%s is already this model's, checked: not exported again", paths.onnx)
        if not repository_matches(paths.model_repository, done["sha256"]):
            write_repository(paths, predictor, paths.onnx.read_bytes())
        return done
    images = read_idx(test_images, 3)
    model = onnx_bytes(predictor)
    result = {"file": paths.onnx.name, "sha256": hashlib.sha256(model).hexdigest(),
              "model_sha256": predictor.sha256, **check(model, predictor, images)}
    if not result["passed"]:
        raise MnistflowError(
            f"{paths.onnx}: not written: onnxruntime disagrees with PyTorch on {test_images} (argmax agreement "
            f"{result['argmax_agreement']:.4%}, max logit difference {result['max_abs_logit_diff']:.2e}, "
            f"allowed {TOLERANCE:.0e})")
    atomic.write_bytes(paths.onnx, model)
    write_repository(paths, predictor, model)
    atomic.write_json(paths.export_check, result)  # last: it says the export is done
    log.info("wrote %s: onnxruntime agrees with PyTorch on all %d test images (max logit difference %.1e)",
             paths.onnx, len(images), result["max_abs_logit_diff"])
    return result


def write_repository(paths: RunPaths, predictor: Predictor, model: bytes) -> None:
    config = config_text(MODEL_NAME, INPUT, OUTPUT, predictor.input_shape, len(predictor.labels))
    folder = write_model_repository(paths.model_repository, model, config, predictor.labels)
    log.info("wrote %s: the model repository Triton and KServe load", folder)


def exported_check(paths: RunPaths, model_sha256: str) -> dict[str, Any] | None:
    """The recorded check when ``model.onnx`` is already this model's checked export, else None."""
    done = recorded_check(paths, model_sha256)
    if done and paths.onnx.exists() and atomic.sha256_of(paths.onnx) == done["sha256"]:
        return done
    return None


def export_pending(paths: RunPaths, params_digest: str) -> bool:
    """Whether a run of these params in this folder has an export ahead of it: False
    only when ``model.pt`` is these params' model and ``model.onnx`` its checked export."""
    try:
        if decode(paths.model, MODEL_FORMAT).get("params_digest") != params_digest:
            return True  # training will replace it
        return exported_check(paths, atomic.sha256_of(paths.model)) is None
    except (CheckpointError, OSError):  # no model yet, or an unreadable one: the run's tasks say what is wrong
        return True


def recorded_check(paths: RunPaths, model_sha256: str) -> dict[str, Any] | None:
    """The export check for *this* model.pt, or None (not exported, or exported from another model)."""
    try:
        result = json.loads(paths.export_check.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("model_sha256") == model_sha256 else None
