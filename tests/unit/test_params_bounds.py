"""Params and sweep files: bounded work to read them, and bounds on what they ask for (issue 24, class 2).

Each hostile file here once hung, grew past a gigabyte, or ended in a traceback.
Every one must now be refused in one line, in well under a second, naming the
file and the field.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_params_bounds.py.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
import yaml

from lifecycle.sweep_spec import MAX_TRIALS, expand, load_spec
from mnistflow.errors import MnistflowError
from mnistflow.params import load_params, validate
from mnistflow.yaml_file import MAX_YAML_BYTES, read_yaml
from tests.helpers import LAUGHS


def _refused(path: Path) -> str:
    started = time.monotonic()
    with pytest.raises(MnistflowError) as info:
        load_params(path)
    assert time.monotonic() - started < 30  # a guard, not a timing: these once hung for a minute
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message
    return message


@pytest.mark.parametrize("key", ["device", "model.hidden", "plot.dpi", "data.mirrors"])
def test_a_billion_laughs_as_a_known_key_is_refused_in_bounded_time_and_memory(tmp_path, key):
    section, _, leaf = key.rpartition(".")
    path = tmp_path / "params.yaml"
    path.write_text(f"{LAUGHS}\n" + (f"{section}: {{{leaf}: *i}}\n" if section else f"{key}: *i\n"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = _refused(path)
    assert "expands to over 100,000 values" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: under 200 MB more


def test_an_error_quotes_a_huge_value_briefly(tmp_path):
    message = str(pytest.raises(MnistflowError, validate, {"device": ["x" * 10_000] * 10_000}).value)
    assert message.startswith("params: device: ") and len(message) < 400
    message = str(pytest.raises(MnistflowError, validate, {"model": {"hidden": [10**400]}}).value)
    assert "model.hidden.0" in message and len(message) < 400


def test_a_params_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "params.yaml"
    with open(path, "wb") as fh:
        fh.truncate(50 * 2**20)  # 50 MB, sparse
    assert _refused(path) == f"{path}: 52,428,800 bytes; a params file is at most {MAX_YAML_BYTES:,}"


def test_deep_nesting_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "nested too deeply" in _refused(path)
    path.write_text("model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    assert "nested too deeply" in _refused(path)


@pytest.mark.parametrize("text, named", [
    # past Python's 4,300-digit limit for int(): YAML cannot build it (within it: train.seed's bound)
    ("train: {seed: " + "9" * 5000 + "}\n", "a value cannot be read"),
    (b"\xff\xfe\x00".decode("latin-1") + "\n", "not UTF-8"),
    ("a: [\n", "not valid YAML"),
])
def test_values_yaml_cannot_build_are_one_line(tmp_path, text, named):
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    assert named in _refused(path)


def test_a_folder_or_a_device_as_params_is_one_line(tmp_path):
    assert "not a regular file" in _refused(tmp_path)
    assert "not a regular file" in _refused(Path("/dev/zero"))


@pytest.mark.parametrize("raw, field", [
    ({"train": {"stages": [{"epochs": 1, "lr": float("inf")}]}}, "train.stages.0.lr: Input should be a finite"),
    ({"train": {"stages": [{"epochs": 1, "lr": float("nan")}]}}, "train.stages.0.lr: Input should be a finite"),
    ({"train": {"seed": 2**64}}, "train.seed:"),
    ({"data": {"seed": -1}}, "data.seed:"),
    ({"train": {"batch_size": 10**12}}, "train.batch_size:"),
    ({"train": {"threads": 100_000}}, "train.threads:"),
    ({"train": {"stages": [{"epochs": 10**9, "lr": 0.1}]}}, "train.stages.0.epochs:"),
    ({"train": {"stages": [{"epochs": 6000, "lr": 0.1}, {"epochs": 6000, "lr": 0.1}]}}, "train: stages: 12,000"),
    ({"model": {"hidden": [10**7]}}, "model.hidden.0:"),
    ({"model": {"hidden": [8] * 100}}, "model.hidden:"),
    ({"model": {"kind": "cnn", "channels": [10**6, 8], "kernels": [3, 3]}}, "model.channels.0:"),
    ({"model": {"kind": "cnn", "kernels": [1000, 3]}}, "model.kernels.0:"),
    ({"model": {"max_norm": float("inf")}}, "model.max_norm:"),
    ({"train": {"optimizer": {"weight_decay": 1e300}}}, "train.optimizer.weight_decay:"),
    ({"plot": {"width": 1e9}}, "plot.width:"),
    ({"plot": {"width": 90, "dpi": 600}}, "plot: 90 x 4 inches at 600 dpi"),
])
def test_every_numeric_param_is_bounded(raw, field):
    message = str(pytest.raises(MnistflowError, validate, raw).value)
    assert field in message and "\n" not in message, message


def _sweep(tmp_path: Path, **fields) -> Path:
    (tmp_path / "params.yaml").write_text("{}\n")
    spec = {"name": "s", "base": str(tmp_path / "params.yaml"), **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("fields, named", [
    ({"random": {"trials": 3, "params": {"train.stages.0.lr": {"low": 0, "high": 1, "log": True}}}},
     "log: true needs low > 0"),
    ({"random": {"trials": 3, "params": {"train.stages.0.lr": {"low": -1, "high": 1, "log": True}}}},
     "log: true needs low > 0"),
    ({"random": {"trials": 10**9, "params": {"train.stages.0.lr": {"low": 0.1, "high": 1}}}}, "random.trials:"),
    ({"grid": {"train.stages.0.lr": [0.1]}, "seeds": 10**9}, "seeds:"),
    ({"grid": {"train.stages.0.lr": [0.1, 0.2]},
      "random": {"trials": 600, "params": {"train.stages.1.lr": {"low": 0.1, "high": 1}}}},
     f"plans 1,200 trials (grid x random.trials x seeds); a sweep runs at most {MAX_TRIALS:,}"),
    ({"grid": {f"model.hidden.{i}": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] for i in range(5)}}, "plans 100,000 trials"),
])
def test_sweep_files_are_bounded_before_anything_is_expanded(tmp_path, fields, named):
    started = time.monotonic()
    message = str(pytest.raises(MnistflowError, load_spec, _sweep(tmp_path, **fields)).value)
    assert named in message and "\n" not in message, message
    assert time.monotonic() - started < 2


def test_negative_list_positions_are_refused(tmp_path):
    spec = load_spec(_sweep(tmp_path, grid={"train.stages.-1.lr": [0.1]}))
    message = str(pytest.raises(MnistflowError, expand, spec, validate({}).model_dump(mode="json"), "sweep s").value)
    assert "train.stages.-1.lr: '-1' is not a position in a list (0, 1, ...; no negative ones)" in message


def test_a_billion_laughs_sweep_file_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"{LAUGHS}\nname: s\ngrid: {{model.hidden: *i}}\n")
    message = str(pytest.raises(MnistflowError, load_spec, path).value)
    assert "expands to over 100,000 values" in message


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  batch_size: 100\n  seed: 1\n  batch_size: 50\n")
    with pytest.raises(MnistflowError, match=r"key 'batch_size' twice in one mapping, at lines 2 and 4; keep one"):
        load_params(path)
    path.write_text("base: &base {epochs: 1, lr: 0.1}\ntrain:\n  stages:\n    - <<: *base\n      lr: 0.5\n")
    assert read_yaml(path)["train"]["stages"][0]["lr"] == 0.5  # a merge key is no repeat


def test_more_threads_than_cores_is_a_warning_saying_how_many(caplog):
    import os

    from mnistflow.device import configure_runtime, select_device

    cores = len(os.sched_getaffinity(0))
    configure_runtime(select_device("cpu"), cores + 6)
    assert f"train.threads: {cores + 6} threads on {cores} cores is oversubscribed" in caplog.text
    configure_runtime(select_device("cpu"), 1)
