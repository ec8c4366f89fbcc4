"""Where intake's items come from: a folder of class folders, a CSV of ``path,label``,
an IDX images+labels pair, or the service's feedback inbox.

Each source yields ``Candidate``s: one per item, with its origin (a file, or a
row or an index in a file) and either its prepared pixels and class, or the
reason it cannot be used. Pictures go through ``pictures.imaging`` exactly as the
predictor's input does, so training and serving see the same pixels. Sources
are only read, never changed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pictures.labels import class_index
from mnistflow.errors import MnistflowError
from mnistflow.idx import parse_header, parse_idx
from pictures.imaging import decode_image, to_model_input, whole_frame

PICTURES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


@dataclass(frozen=True)
class Limits:
    """What one intake reads at most; anything larger is refused before it is read."""

    items: int = 100_000              # items per batch, all sources together
    picture_bytes: int = 10 * 2**20   # bytes per picture file
    idx_bytes: int = 200 * 2**20      # bytes per IDX file (a whole MNIST training set is 47 MB)
    csv_bytes: int = 20 * 2**20       # bytes per CSV file
    csv_paths_outside: bool = False   # a CSV may name pictures outside its own folder (off: confined to it)


# Who sent an item named on intake's command line (or the deployment's sources): the operator.
OPERATOR = "operator"


@dataclass(frozen=True)
class Candidate:
    origin: str
    pixels: np.ndarray | None = None  # prepared: uint8, the dataset's shape
    label: int | None = None
    refused: str | None = None         # why it cannot be used, when it cannot
    frame: np.ndarray | None = None    # a picture's whole frame at the dataset's shape (None: pixels are the source)
    client: str = OPERATOR             # who sent it: the service's feedback records its client


def _label_problem(text: str, classes: list[str]) -> str:
    return f"label {text!r} is not one of the dataset's classes (0-{len(classes) - 1} or {', '.join(classes)})"


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def regular_file(path: Path) -> os.stat_result:
    """``path``'s stat (through links), once it is known to be a regular file: a FIFO would
    block intake, and /dev/zero never ends. Anything else is one line naming it."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a file")
        raise MnistflowError(f"{path}: {kind}, not a regular file; intake reads regular files only")
    return status


def prepared_picture(path: Path, shape: tuple[int, int], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """A picture file as the network's input (decoded within bounds, prepared as the service
    prepares it), and its whole frame at the same shape, for the gate's near-copy rule."""
    size = regular_file(path).st_size
    if size > limits.picture_bytes:
        raise MnistflowError(f"{size:,} bytes is more than the {limits.picture_bytes:,} allowed per picture")
    grey = decode_image(path.read_bytes(), str(path))
    prepared = to_model_input(grey, shape)
    if not prepared.any():
        raise MnistflowError("no ink: the picture is blank after preparation")
    return np.round(prepared * 255.0).astype(np.uint8), whole_frame(grey, shape)


def _picture(path: Path, origin: str, label_text: str, classes: list[str], shape: tuple[int, int],
             limits: Limits) -> Candidate:
    label = class_index(label_text, classes)
    if label is None:
        return Candidate(origin, refused=_label_problem(label_text, classes))
    try:
        pixels, frame = prepared_picture(path, shape, limits)
        return Candidate(origin, pixels, label, frame=frame)
    except MnistflowError as exc:
        return Candidate(origin, refused=str(exc).removeprefix(f"{path}: "))
    except OSError as exc:
        return Candidate(origin, refused=f"cannot read ({exc.strerror or exc})")


def from_folder(folder: Path, classes: list[str], shape: tuple[int, int], limits: Limits) -> Iterator[Candidate]:
    """Subfolders named by class (``3/``, ``Trouser/``), each holding pictures. Links to folders are
    not followed (a class folder linked to /etc would walk all of it): each is listed, refused."""
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            yield Candidate(str(entry), refused="a link to a folder, not followed (copy the pictures in, or give "
                                                "that folder as a source of its own)")
        elif entry.is_dir():
            yield from _class_folder(entry, classes, shape, limits)
        else:
            yield Candidate(str(entry), refused="not in a class folder (put it in a subfolder named by its class)")


def _class_folder(sub: Path, classes: list[str], shape: tuple[int, int], limits: Limits) -> Iterator[Candidate]:
    for root, folders, files in os.walk(sub):  # followlinks=False: a linked folder is listed, not entered
        for name in sorted(folders):
            if (Path(root) / name).is_symlink():
                yield Candidate(str(Path(root) / name), refused="a link to a folder, not followed")
        folders.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() not in PICTURES:
                yield Candidate(str(path), refused=f"not a picture (suffix {path.suffix or 'none'}; "
                                                   f"expected one of {', '.join(sorted(PICTURES))})")
            else:
                yield _picture(path, str(path), sub.name, classes, shape, limits)


def from_csv(path: Path, classes: list[str], shape: tuple[int, int], limits: Limits) -> Iterator[Candidate]:
    """Rows of ``path,label`` (a header row ``path,label`` is optional); paths relative to the CSV's folder."""
    if regular_file(path).st_size > limits.csv_bytes:
        raise MnistflowError(f"{path}: more than the {limits.csv_bytes:,} bytes allowed for a CSV source")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MnistflowError(f"{path}: not UTF-8 text (expected a CSV of path,label)") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1) if row and "".join(row).strip()]
    header = bool(rows) and rows[0][0] == 1 and [c.strip().lower() for c in rows[0][1]] == ["path", "label"]
    if len(rows) - header > limits.items:  # counted before any picture is prepared
        raise MnistflowError(f"{path}: {len(rows) - header:,} rows; one intake reads at most {limits.items:,} "
                             "items (split the batch; nothing was written)")
    home = path.parent.resolve()
    for number, row in rows:
        origin = f"{path} row {number}"
        if header and number == 1:
            continue
        if len(row) != 2:
            yield Candidate(origin, refused=f"{len(row)} columns (expected path,label)")
            continue
        picture = (path.parent / row[0].strip())
        try:
            where = picture.resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a loop of links
            yield Candidate(origin, refused=f"{row[0].strip()[:80]!r}: not a usable path ({exc})")
            continue
        if not limits.csv_paths_outside and not where.is_relative_to(home):
            yield Candidate(origin, refused=f"{row[0].strip()[:80]}: outside the CSV's folder {path.parent} "
                                            "(--csv-paths-outside allows it)")
            continue
        if not picture.exists():
            yield Candidate(origin, refused=f"{row[0].strip()[:80]}: no such file")
            continue
        yield _picture(picture, f"{origin} ({picture})", row[1], classes, shape, limits)


def _read_idx(path: Path, ndim: int, limits: Limits) -> np.ndarray:
    size = regular_file(path).st_size
    if size > limits.idx_bytes:
        raise MnistflowError(f"{path}: {size:,} bytes is more than the {limits.idx_bytes:,} allowed per IDX file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raise MnistflowError(f"{path}: gzip-compressed; give the uncompressed IDX file (gunzip -k it)")
    parse_header(path, raw, ndim)
    return parse_idx(path, raw, ndim)


def labels_beside(images: Path) -> Path:
    """The labels file of an IDX images file, by MNIST's naming (train-images-idx3-ubyte -> train-labels-idx1-ubyte)."""
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    if name == images.name:
        raise MnistflowError(f"{images}: cannot tell its labels file from the name; name the images file "
                             "*images-idx3-ubyte with *labels-idx1-ubyte beside it")
    return images.with_name(name)


def from_idx(images_path: Path, classes: list[str], shape: tuple[int, int], limits: Limits) -> Iterator[Candidate]:
    """An IDX pair of images and labels: the dataset's own format, taken as it is (no preparation)."""
    regular_file(images_path)
    labels_path = labels_beside(images_path)
    if not labels_path.exists():
        raise MnistflowError(f"{labels_path}: missing (the labels of {images_path})")
    images, labels = _read_idx(images_path, 3, limits), _read_idx(labels_path, 1, limits)
    if len(images) != len(labels):
        raise MnistflowError(f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels")
    if tuple(images.shape[1:]) != tuple(shape):
        raise MnistflowError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                             f"the dataset's are {shape[0]}x{shape[1]}")
    for i, (pixels, label) in enumerate(zip(images, labels)):
        origin = f"{images_path} item {i}"
        if int(label) >= len(classes):
            yield Candidate(origin, refused=_label_problem(str(int(label)), classes))
        elif not pixels.any():
            yield Candidate(origin, refused="no ink: the image is blank")
        else:
            yield Candidate(origin, np.array(pixels), int(label))


def from_inbox(inbox: Path, classes: list[str], shape: tuple[int, int], limits: Limits) -> Iterator[Candidate]:
    """The service's feedback: ``<id>.png`` beside ``<id>.json`` ({"label": ...})."""
    for meta in sorted(inbox.glob("*.json")):
        picture = meta.with_suffix(".png")
        origin = str(picture)
        try:
            record = json.loads(meta.read_text())
            label, client = record["label"], str(record.get("client") or "anonymous:unrecorded")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            yield Candidate(str(meta), refused=f"not a feedback record ({exc})")
            continue
        if not picture.is_file():
            yield Candidate(origin, refused=f"missing (its record {meta.name} has no picture)", client=client)
            continue
        yield dataclasses.replace(_picture(picture, origin, str(label), classes, shape, limits), client=client)


def read_source(source: Path, classes: list[str], shape: tuple[int, int], limits: Limits,
                inbox: bool = False) -> Iterator[Candidate]:
    """The candidates of one source, by what it is."""
    if not source.exists():
        raise MnistflowError(f"{source}: no such file or folder")
    if inbox:
        return from_inbox(source, classes, shape, limits)
    if source.is_dir():
        return from_folder(source, classes, shape, limits)
    if source.suffix.lower() == ".csv":
        return from_csv(source, classes, shape, limits)
    if "idx3" in source.name or "images" in source.name:
        return from_idx(source, classes, shape, limits)
    raise MnistflowError(f"{source}: not a source intake reads (a folder of class folders, a .csv of "
                         "path,label, or an *images-idx3-ubyte file with its labels beside it)")


def read_sources(sources: list[Path], classes: list[str], shape: tuple[int, int], limits: Limits,
                 inbox: Path | None = None) -> list[Candidate]:
    """Every candidate of every source, or one error for a batch that cannot be read as a whole."""
    candidates: list[Candidate] = []
    streams = [read_source(Path(s), classes, shape, limits) for s in sources]
    if inbox is not None:
        streams.append(read_source(inbox, classes, shape, limits, inbox=True) if inbox.is_dir() else iter(()))
    for stream in streams:
        for candidate in stream:
            candidates.append(candidate)
            if len(candidates) > limits.items:
                raise MnistflowError(f"more than {limits.items:,} items in one intake; split the batch "
                                     "(nothing was written)")
    return candidates
