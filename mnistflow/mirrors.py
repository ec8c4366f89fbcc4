"""Where the download step looks for a dataset's files, in order.

Which mirror served a file never changes what is stored: every file is checked
against the dataset's checksums (params) before it is published. So this is no
stage's code (mnistflow/code.py's ``HARNESS``): editing the list reruns nothing.
"""

from __future__ import annotations

import os

from .datasets import DATASETS
from .params import DataParams

# One setting for every dataset: a directory (or URL) with one folder per dataset,
# named as data.dataset names it (mnist/, fashion-mnist/, kmnist/), as torchvision's
# ``root`` is laid out. And the older form, one mirror tried first whatever the dataset.
MIRROR_ROOT_ENV = "MNISTFLOW_MIRROR_ROOT"
MIRROR_ENV = "MNISTFLOW_MIRROR"
HINT = (
    f"to work offline, put each dataset's four *-ubyte.gz files in a folder named after it "
    f"(mnist/, fashion-mnist/, ...) under one directory and set {MIRROR_ROOT_ENV}=/that/dir "
    f"(or set {MIRROR_ENV} to one dataset's folder, or list it under data.mirrors in params.yaml)"
)


def mirror_list(data: DataParams, env: dict[str, str] | None = None) -> list[str]:
    """In order: the dataset's folder under $MNISTFLOW_MIRROR_ROOT and $MNISTFLOW_MIRROR
    (for a named dataset only), then data.mirrors or else the published mirrors.

    A custom dataset is only ever fetched from its own data.mirrors: a machine-wide
    mirror holds a named dataset's files under the same names, and trying them
    first would only hash the wrong files and lead every error with that mismatch."""
    env = os.environ if env is None else env
    if data.dataset not in DATASETS:
        return list(data.mirrors or [])
    configured = list(data.mirrors) if data.mirrors is not None else list(DATASETS[data.dataset].mirrors)
    first = []
    root = env.get(MIRROR_ROOT_ENV, "").strip()
    if root:
        first.append(f"{root.rstrip('/')}/{data.dataset}" + ("/" if "://" in root else ""))
    extra = env.get(MIRROR_ENV, "").strip()
    if extra and extra not in first:
        first.append(extra)
    return first + [m for m in configured if m not in first]
