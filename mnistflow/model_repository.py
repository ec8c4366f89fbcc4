"""The export's model repository: the layout NVIDIA Triton and KServe load.

    <run>/model_repository/mnistflow/config.pbtxt    the model's configuration
    <run>/model_repository/mnistflow/labels.txt      one class name a line
    <run>/model_repository/mnistflow/1/model.onnx    the checked ONNX file

``config.pbtxt`` is Triton's model configuration in protobuf text format
(``platform: "onnxruntime_onnx"``, the input ``pixels`` and the output
``logits`` with their datatypes and dims, batch dimension left out, and a
maximum batch). It is written by hand here, as a template, so the pipeline needs
no Triton package; tests parse it with Triton's own ``model_config`` protobuf
(shipped in ``tritonclient[grpc]``) and check it against the ONNX file. A
Triton server started with ``--model-repository <run>/model_repository`` (or a
KServe InferenceService pointing at it) then answers the clients that speak to
mnistflow's service over the Open Inference Protocol, unchanged.

The repository is one unit: it is filled under a dot name and renamed into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import atomic

MODEL_NAME = "mnistflow"  # the name the service's /v2 routes use by default too
VERSION = "1"  # a run exports one model; Triton serves the highest numbered version
MAX_BATCH_SIZE = 1024  # images per request: the service's own limit


def config_text(name: str, input_name: str, output_name: str, shape: tuple[int, int], classes: int) -> str:
    height, width = shape
    return (f"# NVIDIA Triton's model configuration, written by mnistflow's export step.\n"
            f'name: "{name}"\n'
            f'platform: "onnxruntime_onnx"\n'
            f"max_batch_size: {MAX_BATCH_SIZE}\n"
            f"input [\n  {{\n    name: \"{input_name}\"\n    data_type: TYPE_FP32\n"
            f"    dims: [ 1, {height}, {width} ]\n  }}\n]\n"
            f"output [\n  {{\n    name: \"{output_name}\"\n    data_type: TYPE_FP32\n"
            f"    dims: [ {classes} ]\n    label_filename: \"labels.txt\"\n  }}\n]\n")


def write_model_repository(root: Path, onnx: bytes, config: str, labels: list[str]) -> Path:
    """Replace ``root`` with a repository holding this model alone; returns the model's folder."""
    scratch = root.with_name(f".{root.name}-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    model = scratch / MODEL_NAME
    (model / VERSION).mkdir(parents=True)
    atomic.write_bytes(model / VERSION / "model.onnx", onnx)
    atomic.write_text(model / "labels.txt", "".join(f"{label}\n" for label in labels))
    atomic.write_text(model / "config.pbtxt", config)
    if root.exists():  # a folder cannot be renamed over a full one: the old one steps aside first
        aside = root.with_name(f".{root.name}-old-{os.getpid()}")
        os.rename(root, aside)
        os.rename(scratch, root)
        shutil.rmtree(aside)
    else:
        os.rename(scratch, root)
    atomic.fsync_dir(root.parent)
    return root / MODEL_NAME


def repository_matches(root: Path, onnx_sha256: str) -> bool:
    """Whether ``root`` already holds this ONNX file (a rerun of the export leaves it be)."""
    onnx = root / MODEL_NAME / VERSION / "model.onnx"
    return onnx.exists() and (root / MODEL_NAME / "config.pbtxt").exists() and atomic.sha256_of(onnx) == onnx_sha256
