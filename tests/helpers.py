"""Small MNIST-format datasets, a mirror server, and the real parts of harness/ (servers, repos)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from harness.real_parts import (  # noqa: F401  (the tests import them from here)
    REPO,
    PrefectServer,
    clean_env,
    copy_repo,
    dvc,
    env_for,
    free_port,
    git,
    run,
)
from mnistflow.datasets import FILE_NAMES, class_labels
from mnistflow.idx import encode_idx
from mnistflow.dvc_stages import DVC_STAGES

# Every DVC stage, in the order dvc.yaml runs them.
PIPELINE_STAGES = DVC_STAGES


def cpu_runtime():
    """The runtime of a one-thread CPU run, as an entry point would hand it down."""
    from mnistflow.device import DeviceChoice, configure_runtime

    return configure_runtime(DeviceChoice("cpu", "requested"), threads=1)


def make_arrays(n_train: int = 600, n_test: int = 200, seed: int = 0,
                shape: tuple[int, int] = (28, 28)) -> dict[str, np.ndarray]:
    """A learnable 10-class problem: a fixed random stroke pattern per class plus noise."""
    rng = np.random.default_rng(seed)
    templates = (rng.random((10, *shape)) > 0.8) * 200.0

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        images = templates[labels] + rng.normal(0, 40, (n, *shape))
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return {"train-images": train_x, "train-labels": train_y, "test-images": test_x, "test-labels": test_y}


def write_dataset(directory: Path, arrays: dict[str, np.ndarray] | None = None, **kwargs) -> dict[str, str]:
    """Write the four .gz files (of ``arrays``, else ``make_arrays(**kwargs)``); return their
    uncompressed md5s (the data.checksums param)."""
    directory.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for key, array in (arrays if arrays is not None else make_arrays(**kwargs)).items():
        raw = encode_idx(array)
        (directory / FILE_NAMES[key]).write_bytes(gzip.compress(raw, mtime=0))
        checksums[key] = hashlib.md5(raw).hexdigest()
    return checksums


def tiny_params(mirror: str | Path, checksums: dict[str, str], **sections) -> dict:
    params = {
        "data": {"dataset": "custom", "mirrors": [str(mirror)], "checksums": checksums,
                 "val_fraction": 0.2, "seed": 0},
        "model": {"hidden": [16]},
        "train": {"batch_size": 50, "stages": [{"epochs": 2, "lr": 0.5}, {"epochs": 2, "lr": 0.1}]},
        "device": "cpu",
        "plot": {"dpi": 40},
    }
    for name, values in sections.items():
        params[name] = {**params.get(name, {}), **values} if isinstance(values, dict) else values
    return params


def custom_dir(data_root: Path) -> Path:
    """The one custom dataset's folder under ``data_root`` (``custom/<key>``, mnistflow.dataset_files.dataset_dir)."""
    folders = [p for p in (Path(data_root) / "custom").iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage(cwd: Path, name: str, env: dict[str, str] | None = None, args: list[str] = (),
          **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", f"mnistflow.dvc_stages.{name}", *args], cwd, env, **kw)


class MirrorServer:
    """Real HTTP on 127.0.0.1, one mirror per first path part, each misbehaving its own way:
    /fail/ (HTTP 503), /corrupt/ (a truncated gzip, honestly sized), /cut/ (the full
    Content-Length, then half the body and a closed connection), /hang/ (accepts, never
    answers), /trickle/ (one byte every 0.3 s) and /good/ (the files as they are).
    Counts every request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                kind, _, name = self.path.strip("/").partition("/")
                path = server.directory / name
                if kind == "hang":
                    time.sleep(60)
                    return
                if kind == "fail" or not path.exists():
                    self.send_error(503 if kind == "fail" else 404)
                    return
                body = path.read_bytes()
                if kind == "corrupt":
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if kind == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if kind == "trickle":
                    try:
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.3)
                    except OSError:  # the client gave up, as it should
                        pass
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# The training flow's command line, and its one-line error (the hardening tests and others).
FLOW = [sys.executable, "-m", "flows.training"]


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error: one line, the last, after any progress the command logged."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("mnistflow: error: ")]
    assert errors == lines[-1:], result.stderr
    return errors[0]


# A small CNN that trains in seconds (the CNN, export and flow tests).
CNN_MODEL = {"kind": "cnn", "channels": [4, 8], "kernels": [5, 3], "hidden": [16], "batch_norm": True,
             "dropout": 0.1}
CNN_TRAIN = {"optimizer": {"name": "adam", "betas": [0.7, 0.9]},
             "stages": [{"epochs": 2, "lr": 0.01, "schedule": "onecycle"}, {"epochs": 2, "lr": 0.002}],
             "augment": {"max_shift": 1}}


def prepare(params, workdir, out):
    """The data downloaded and split, and the session's tensors on the CPU."""
    from mnistflow.device import select_device
    from mnistflow.download import download
    from mnistflow.session import open_session
    from mnistflow.split import make_split

    files = download(params.data, workdir / "data")
    make_split(files, params.data, out.split)
    return files, open_session(params, files, out, select_device("cpu")).data


def train_every_stage(params, files, out):
    from mnistflow.device import select_device
    from mnistflow.session import open_session
    from mnistflow.train import train_all

    train_all(params, open_session(params, files, out, select_device("cpu")), files, out)


def _changed(**changes) -> dict[str, np.ndarray]:
    arrays = make_arrays(n_train=200, n_test=50)
    for key, change in changes.items():
        arrays[key] = change(arrays[key])
    return arrays


CASES = {
    "fewer train images than labels": ({"train-images": lambda a: a[:190]},
                                       "train-labels-idx1-ubyte: 200 labels for the 190 images"),
    "fewer train labels than images": ({"train-labels": lambda a: a[:190]},
                                       "train-labels-idx1-ubyte: 190 labels for the 200 images"),
    "fewer test labels than images": ({"test-labels": lambda a: a[:40]},
                                      "t10k-labels-idx1-ubyte: 40 labels for the 50 images"),
    "test images of another size": ({"test-images": lambda a: a[:, :14, :14]},
                                    "t10k-images-idx3-ubyte: its images are 14x14, the training images"),
    "a train label of 12": ({"train-labels": lambda a: np.where(np.arange(len(a)) == 7, 12, a)},
                            "train-labels-idx1-ubyte: label 12 at item 7"),
    "a label of 255 in test only": ({"test-labels": lambda a: np.where(np.arange(len(a)) == 3, 255, a)},
                                    "t10k-labels-idx1-ubyte: label 255 at item 3"),
    "no test images": ({"test-images": lambda a: a[:0], "test-labels": lambda a: a[:0]},
                       "t10k-images-idx3-ubyte: holds 0 images"),
    "images with no rows": ({"train-images": lambda a: np.zeros((200, 0, 28), np.uint8),
                             "test-images": lambda a: np.zeros((50, 0, 28), np.uint8)},
                            "train-images-idx3-ubyte: its images are 0x28"),
}


# Intake's items, as the continuous-training tests add them.
CLASSES = class_labels("custom")
SHAPE = (28, 28)


def write_idx_pair(folder: Path, images: np.ndarray, labels: np.ndarray, stem: str = "new") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}-images-idx3-ubyte").write_bytes(encode_idx(images))
    (folder / f"{stem}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return folder / f"{stem}-images-idx3-ubyte"


def new_items(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    arrays = make_arrays(n_train=n, n_test=1, seed=seed)
    return arrays["train-images"], arrays["train-labels"]


def add_items(params, data_root: Path, sources: list[Path], time: str = "2026-12-01T00:00:00.000+00:00"):
    """Intake of ``sources`` into the dataset under ``data_root``, in this process, without the trust rules."""
    from lifecycle.intake import intake
    from lifecycle.intake_sources import Limits, read_sources
    from mnistflow.dataset_files import locate

    candidates = read_sources(sources, CLASSES, SHAPE, Limits())
    return intake(params.data.dataset, lambda: locate(params.data, data_root), data_root, candidates,
                  [str(s) for s in sources], time)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def digit() -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 255
    return image


LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                      f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                      f"*{chr(97 + i)}]" for i in range(8)])


def write_sweep(path: Path, **fields) -> Path:
    spec = {"name": "tiny", "base": "params.yaml", "grid": {"train.stages.0.lr": [0.5, 0.1]},
            "seeds": 1, "select": "val_accuracy", "workers": 2, **fields}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
