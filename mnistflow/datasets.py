"""The MNIST family: file names, checksums and the published mirrors.

All three share the IDX format and file names. MNIST's and Fashion-MNIST's
checksums are of the *uncompressed* files, so any genuine copy verifies by its
content, however it was compressed (Debian's `dataset-fashion-mnist`
re-compresses the files). For KMNIST only the md5 of the published ``.gz``
files is known, so it is verified on the gzip bytes; a re-compressed copy
needs ``data.checksums``, and the error says exactly what to set.
"""

from __future__ import annotations

from dataclasses import dataclass

FILES = ("train-images", "train-labels", "test-images", "test-labels")
FILE_NAMES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "test-images": "t10k-images-idx3-ubyte.gz",
    "test-labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class Checksum:
    md5: str
    # True: md5 of the uncompressed IDX bytes. False: of the .gz as published.
    uncompressed: bool


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    mirrors: tuple[str, ...]
    checksums: dict[str, Checksum]
    classes: tuple[str, ...]
    train_size: int = 60_000
    test_size: int = 10_000


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        # torchvision's list, S3 first: yann.lecun.com often refuses downloads.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        checksums={
            "train-images": Checksum("6bbc9ace898e44ae57da46a324031adb", True),
            "train-labels": Checksum("a25bea736e30d166cdddb491f175f624", True),
            "test-images": Checksum("2646ac647ad5339dbf082846283269ea", True),
            "test-labels": Checksum("27ae3e4e09519cfbb04c329615203637", True),
        },
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # md5 of the uncompressed files (the published .gz md5s are 8d4fb7e6c68d591d4c3dfef9ec88bf0d,
        # 25c81989df183df01b3e8a0aad5dffbe, bef4ecab320f06d8554ea6380940ec79, bb300cfdad3c16e7a12a480ee83cd310).
        checksums={
            "train-images": Checksum("f4a8712d7a061bf5bd6d2ca38dc4d50a", True),
            "train-labels": Checksum("9018921c3c673c538a1fc5bad174d6f9", True),
            "test-images": Checksum("8181f5470baa50b63fa0f6fddb340f0a", True),
            "test-labels": Checksum("15d484375f8d13e6eb1aabb0c3f46965", True),
        },
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        checksums={
            "train-images": Checksum("bdb82020997e1d708af4cf47b453dcf7", False),
            "train-labels": Checksum("e144d726b3acfaa3e44228e80efcd344", False),
            "test-images": Checksum("5c965bf0a639b31b8f53240b1b52f4d7", False),
            "test-labels": Checksum("7320c461ea6c1c855c0b718fb2a4b134", False),
        },
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


def class_labels(dataset: str | None) -> list[str]:
    """The dataset's class names; a custom dataset's classes are its label numbers."""
    spec = DATASETS.get(dataset or "")
    return list(spec.classes) if spec else [str(i) for i in range(10)]
