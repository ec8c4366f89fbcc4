"""Intake's sources, as a hostile tester gave them (issue 39, section 6): anything that is not a
regular file is one line, and listed; CSVs are counted before any picture is prepared and
confined to their folder; a class folder that links elsewhere is not walked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lifecycle.intake_sources import Limits, read_sources
from mnistflow.datasets import class_labels
from mnistflow.errors import MnistflowError

CLASSES = class_labels("mnist")


def picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    Image.fromarray(pixels).save(path)
    return path


def read(*sources: Path, limits: Limits = Limits()) -> dict[str, str | None]:
    return {c.origin: c.refused for c in read_sources(list(sources), CLASSES, (28, 28), limits)}


def test_a_fifo_or_dev_zero_as_a_source_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(MnistflowError, match="train-images-idx3-ubyte: a FIFO, not a regular file"):
        read(tmp_path / "train-images-idx3-ubyte")
    os.mkfifo(tmp_path / "rows.csv")
    with pytest.raises(MnistflowError, match="rows.csv: a FIFO, not a regular file"):
        read(tmp_path / "rows.csv")
    (tmp_path / "zero-images-idx3-ubyte").symlink_to("/dev/zero")
    with pytest.raises(MnistflowError, match="zero-images-idx3-ubyte: a character device, not a regular file"):
        read(tmp_path / "zero-images-idx3-ubyte")


def test_a_fifo_or_a_device_in_a_class_folder_is_listed_not_skipped(tmp_path):
    picture(tmp_path / "src" / "7" / "a.png")
    os.mkfifo(tmp_path / "src" / "7" / "b.png")
    (tmp_path / "src" / "7" / "c.png").symlink_to("/dev/zero")
    found = read(tmp_path / "src")
    assert found[str(tmp_path / "src" / "7" / "a.png")] is None
    assert found[str(tmp_path / "src" / "7" / "b.png")].startswith("a FIFO, not a regular file")
    assert found[str(tmp_path / "src" / "7" / "c.png")].startswith("a character device, not a regular file")


def test_a_class_folder_linked_elsewhere_is_listed_not_walked(tmp_path):
    picture(tmp_path / "src" / "3" / "a.png")
    (tmp_path / "src" / "1").symlink_to("/etc")
    found = read(tmp_path / "src")
    assert found[str(tmp_path / "src" / "1")].startswith("a link to a folder, not followed")
    assert not [origin for origin in found if origin.startswith(str(tmp_path / "src" / "1") + "/")]


def test_csv_paths_stay_in_the_csvs_folder_unless_allowed(tmp_path):
    inside = picture(tmp_path / "batch" / "in.png")
    outside = picture(tmp_path / "elsewhere.png")
    rows = tmp_path / "batch" / "rows.csv"
    rows.write_text(f"path,label\nin.png,7\n../elsewhere.png,7\n{outside},7\n../../../../etc/passwd,1\n")
    found = read(rows)
    assert found[f"{rows} row 2 ({inside})"] is None
    refused = [reason for reason in found.values() if reason]
    assert len(refused) == 3 and all("outside the CSV's folder" in reason for reason in refused)
    allowed = read(rows, limits=Limits(csv_paths_outside=True))
    assert sum(reason is None for reason in allowed.values()) == 3  # /etc/passwd is then just no picture


def test_a_csv_of_too_many_rows_is_refused_before_any_picture_is_prepared(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"missing-{i}.png,7\n" for i in range(1_001)))
    with pytest.raises(MnistflowError, match=r"rows.csv: 1,001 rows; one intake reads at most 1,000 items"):
        read(rows, limits=Limits(items=1_000))


def test_a_label_is_exactly_a_class_name_or_number(tmp_path):
    for name in ("07", "+7", "-1", "7"):
        picture(tmp_path / "src" / name / "a.png")
    found = read(tmp_path / "src")
    assert found[str(tmp_path / "src" / "7" / "a.png")] is None
    for name in ("07", "+7", "-1"):
        assert found[str(tmp_path / "src" / name / "a.png")].startswith(f"label {name!r} is not one of the dataset's")
