"""The convolutional network: params, training, resume, old model files, other image sizes, the judge.

Here: the cases that start processes or servers; the others are in tests/unit/test_cnn.py.
"""

import signal
import subprocess
import sys

from tests.helpers import CNN_MODEL, CNN_TRAIN, clean_env, stage, tiny_params, write_dataset, write_params

# Small, but every part of the CNN is on: two blocks, batch norm, dropout, shifts.


def test_kernels_too_large_for_a_custom_image_are_one_line_and_write_no_model(tmp_path):
    mirror = tmp_path / "mirror"
    checksums = write_dataset(mirror, shape=(10, 10))
    work = tmp_path / "work"
    work.mkdir()
    write_params(work / "params.yaml", tiny_params(mirror, checksums, model={**CNN_MODEL, "kernels": [5, 5]}))
    stage(work, "download", check=True)
    failed = stage(work, "split")  # the image size is known from the headers: refused before the split
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "model.kernels: kernel 5 of convolution 2 is larger than the 3x3 image it gets (the input is 10x10)" \
        in failed.stderr.strip().splitlines()[-1]
    assert not (work / "outputs").exists()


def test_killed_cnn_training_resumes_with_identical_outputs(tmp_path, dataset):
    params = tiny_params(*dataset, model=CNN_MODEL,
                         train={**CNN_TRAIN, "stages": [{"epochs": 3, "lr": 0.01}, {"epochs": 2, "lr": 0.002}]})
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    for work in (unbroken, killed):
        work.mkdir()
        write_params(work / "params.yaml", params)
        for name in ("download", "split"):
            stage(work, name, check=True)
    stage(unbroken, "train", check=True)

    proc = subprocess.Popen([sys.executable, "-m", "mnistflow.dvc_stages.train"], cwd=killed, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # SIGKILL as soon as the 2nd epoch is reported: no chance to clean up
        if "stage 1/2 epoch 2/3" in line:
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (killed / "outputs/model.pt").exists()
    resumed = stage(killed, "train", check=True)
    assert "resuming stage 1 at epoch 3 of 3" in resumed.stderr
    for work in (unbroken, killed):
        stage(work, "evaluate", check=True)
    for name in ("model.pt", "history.csv", "metrics.json"):
        assert (unbroken / "outputs" / name).read_bytes() == (killed / "outputs" / name).read_bytes(), name
