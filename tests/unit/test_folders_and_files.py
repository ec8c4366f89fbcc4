"""Run folders that are not run folders, model files that are not checkpoints, and how a run ends
(issue 24, classes 3, 4 and 8), through the real command lines.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_folders_and_files.py.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from lifecycle.workspace import dvc_root_writing
from mnistflow.errors import MnistflowError
from mnistflow.run_lock import run_folder_lock
from models.checkpoint import MODEL_FORMAT, CheckpointError, decode


def test_the_workspace_guard_reads_dvc_yaml_as_dvc_does(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages:\n  download:\n    cmd: x\n    outs:\n      - data/${data.dataset}:\n"
                                       "          persist: true\n")
    (tmp_path / "params.yaml").write_text("data: {dataset: fashion-mnist}\n")
    assert dvc_root_writing(tmp_path / "data/fashion-mnist") == tmp_path.resolve()
    assert dvc_root_writing(tmp_path / "data/mnist") is None


def test_decode_refuses_every_kind_of_junk(tmp_path):
    import zipfile

    cases = {"text": b"hello\n", "magic only": b"PK\x03\x04", "empty": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "a zip", "w") as archive:
        archive.writestr("data.pkl", b"not a pickle")
    for path in tmp_path.iterdir():
        with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
            decode(path, MODEL_FORMAT)
    with pytest.raises(CheckpointError, match="not a regular file"):
        decode(tmp_path, MODEL_FORMAT)


def test_a_deleted_champion_is_called_missing(tmp_path):
    paths = RegistryPaths(tmp_path / "registry")
    paths.champion.mkdir(parents=True)
    paths.champion_record.write_text('{"model_sha256": "' + "a" * 64 + '"}')
    with pytest.raises(MnistflowError, match=r"champion/model.pt: missing, though .*record.json records a champion"):
        registry.read_champion(paths)


def test_a_second_writer_of_a_run_folder_is_refused_at_once(tmp_path):
    with run_folder_lock(tmp_path / "run"):
        with pytest.raises(MnistflowError, match=rf"another run \(pid {os.getpid()}\) is writing this run folder"):
            with run_folder_lock(tmp_path / "run"):
                pass
    with run_folder_lock(tmp_path / "run"):  # let go when the first run ended
        pass


def test_the_session_finds_a_process_that_outlived_its_test():
    import uuid

    from harness.real_parts import SESSION_ENV, session_leftovers

    marker = uuid.uuid4().hex
    orphan = subprocess.Popen(["sleep", "60"], env={**os.environ, SESSION_ENV: marker}, start_new_session=True)
    try:
        found = session_leftovers(marker, set())
        assert [line.split(":")[0] for line in found] == [str(orphan.pid)] and "sleep 60" in found[0]
    finally:
        orphan.kill()
        orphan.wait()
    assert session_leftovers(marker, set()) == []
