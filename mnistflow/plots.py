"""The plot stage: accuracy and loss per epoch (stage boundaries marked) and the confusion matrix, as PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed, and none wanted on a worker
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import atomic  # noqa: E402
from .errors import MnistflowError  # noqa: E402
from .params import PlotParams  # noqa: E402
from .paths import RunPaths  # noqa: E402

# No timestamps or version strings in the PNGs: the same inputs give the same bytes.
_METADATA = {"Software": None}


def _read_history(path: Path) -> list[dict[str, float]]:
    try:
        with open(path, newline="") as fh:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    except FileNotFoundError:
        raise MnistflowError(f"{path}: missing (run training first)") from None
    except (ValueError, TypeError) as exc:
        raise MnistflowError(f"{path}: not a training history ({exc})") from None


def _save(fig: plt.Figure, path: Path, dpi: int) -> None:
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=_METADATA))
    plt.close(fig)


def plot_history(history_path: Path, out: Path, opts: PlotParams) -> Path:
    rows = _read_history(history_path)
    epochs = [r["epoch"] for r in rows]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(opts.width, opts.height))
    acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in rows], marker="o", label="validation")
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in rows], marker="o", label="validation")
    # A dashed line where a new stage (new learning rate) begins.
    boundaries = [r["epoch"] - 0.5 for prev, r in zip(rows, rows[1:]) if r["stage"] != prev["stage"]]
    for ax, label in ((acc_ax, "accuracy (%)"), (loss_ax, "cross-entropy loss")):
        for x in boundaries:
            ax.axvline(x, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_title("Validation accuracy per epoch")
    loss_ax.set_title("Loss per epoch (dashed: stage boundary)")
    fig.tight_layout()
    _save(fig, out, opts.dpi)
    return out


def plot_confusion(metrics_path: Path, out: Path, opts: PlotParams) -> Path:
    try:
        cm = json.loads(Path(metrics_path).read_text())["confusion_matrix"]
    except FileNotFoundError:
        raise MnistflowError(f"{metrics_path}: missing (run evaluation first)") from None
    except (ValueError, KeyError) as exc:
        raise MnistflowError(f"{metrics_path}: no confusion matrix ({exc})") from None
    matrix, labels = np.asarray(cm["matrix"]), cm["labels"]
    fig, ax = plt.subplots(figsize=(opts.height * 1.6, opts.height * 1.4))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Test confusion matrix")
    threshold = matrix.max() / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    _save(fig, out, opts.dpi)
    return out


def make_plots(paths: RunPaths, opts: PlotParams) -> list[Path]:
    return [
        plot_history(paths.history, paths.plots / "training.png", opts),
        plot_confusion(paths.evaluation, paths.plots / "confusion.png", opts),
    ]
