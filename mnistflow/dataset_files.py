"""The read side of a dataset: where the download step put its verified files, found
again without the network.

``locate`` is what every step after the download calls: it reads the download
step's manifest, checks each file against it (by size and time, hashing again
only when those changed), and hands back one ``DatasetFiles`` value that speaks
for the dataset from then on. Nothing here fetches: the network is
mnistflow/download.py's, which only the download stage runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .dataset_check import DatasetShape, check_dataset
from .datasets import DATASETS, FILES, FILE_NAMES, Checksum
from .errors import MnistflowError
from .increments import Increment, combined_digest, list_increments
from .params import DataParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetFiles:
    """Where the verified files are, the increments added since, and the digest of it all."""

    dataset: str
    directory: str
    paths: dict[str, str]
    md5: dict[str, str]  # of the uncompressed bytes
    digest: str  # of the four files and every increment (mnistflow.increments.combined_digest)
    increments: tuple[Increment, ...] = ()
    shape: DatasetShape | None = None  # what the headers say (mnistflow.dataset_check)


def expected_checksums(data: DataParams) -> dict[str, Checksum]:
    if data.checksums is not None:
        return {key: Checksum(md5, True) for key, md5 in data.checksums.items()}
    return DATASETS[data.dataset].checksums


# In the dataset's folder (DVC-tracked): the md5 of each verified file, the same on
# every machine. Beside it, outside the tracked folder, each file's size and
# modification time when it verified: machine-specific, only a cache that spares
# hashing 55 MB again in every step.
MANIFEST = "checksums.json"
STAMPS = ".stamps"


def custom_key(data: DataParams) -> str:
    """A custom dataset's folder name: its four checksums, hashed. Two custom datasets
    never share a folder, so no run reads files another run published."""
    blob = "".join(f"{key}:{data.checksums[key]}\n" for key in FILES)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dataset_dir(data: DataParams, data_root: Path) -> Path:
    """``<data_root>/<dataset>``; a custom one's is ``<data_root>/custom/<custom_key>``
    (inside ``data/custom``, which dvc.yaml tracks as ``data/${data.dataset}``)."""
    if data.dataset == "custom":
        return Path(data_root) / "custom" / custom_key(data)
    return Path(data_root) / data.dataset


def stored_name(key: str) -> str:
    return FILE_NAMES[key].removesuffix(".gz")


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _hash_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def is_verified(path: Path, expected: str | None, stamp: dict) -> bool:
    """Is ``path`` the file whose uncompressed md5 is ``expected``?

    Trusted without a read when its size and modification time are the ones
    stamped when it verified; hashed again when either differs.
    """
    if expected is None or not path.exists():
        return False
    if stamp.get("md5") == expected and {k: stamp.get(k) for k in ("size", "mtime_ns")} == _stat(path):
        return True
    return _hash_file(path) == expected


def stamps_path(directory: Path) -> Path:
    # Beside the tracked folder: data/.stamps/mnist.json, data/.stamps/custom-<key>.json.
    if directory.parent.name == "custom":
        return directory.parent.parent / STAMPS / f"custom-{directory.name}.json"
    return directory.parent / STAMPS / f"{directory.name}.json"


def read_stamps(directory: Path) -> dict[str, dict]:
    try:
        stamps = json.loads(stamps_path(directory).read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def write_stamps(directory: Path, md5: dict[str, str], recorded: dict[str, dict]) -> None:
    """Record each verified file's size and time; best effort (a read-only data root
    keeps working, hashing again)."""
    stamps = {key: {"md5": md5[key], **_stat(directory / stored_name(key))} for key in FILES}
    if stamps != recorded:
        try:
            atomic.write_json(stamps_path(directory), stamps)
        except (OSError, MnistflowError) as exc:
            log.debug("could not record %s: %s", stamps_path(directory), exc)


def read_manifest(directory: Path) -> dict:
    """The manifest as it is on disk ({} when missing or unreadable)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def manifest_md5s(manifest: dict) -> dict[str, str]:
    """What the download step verified: per file its md5."""
    # An older manifest held each file's size and time too: its md5s stand.
    return {k: v.get("md5") if isinstance(v, dict) else v for k, v in manifest.items()}


def dataset_files(data: DataParams, directory: Path, md5: dict[str, str],
                   shape: DatasetShape | None = None) -> DatasetFiles:
    """``shape``: the headers as the caller checked them; else they are checked here."""
    base = hashlib.sha256("".join(f"{key}:{md5[key]}\n" for key in FILES).encode()).hexdigest()
    paths = {key: str(directory / stored_name(key)) for key in FILES}
    increments = list_increments(directory)
    return DatasetFiles(data.dataset, str(directory), paths, md5, combined_digest(base, increments), increments,
                        shape or check_dataset(paths))


def locate(data: DataParams, data_root: Path) -> DatasetFiles:
    """The files the download step verified, from its manifest, without re-reading them.

    For the steps after a download (DVC stages run as separate processes, and DVC
    itself hashes data/<dataset>): hashing 55 MB again in each would be work done
    twice. A file whose size or modification time differs from the manifest's is
    hashed again, and one whose content changed is refused.
    """
    directory = dataset_dir(data, data_root)
    manifest, stamps = manifest_md5s(read_manifest(directory)), read_stamps(directory)
    if not manifest:
        raise MnistflowError(f"{directory / MANIFEST}: missing or unreadable (run the download step first)")
    checksums = expected_checksums(data)
    md5 = {}
    for key in FILES:
        path = directory / stored_name(key)
        known = checksums[key].md5 if checksums[key].uncompressed else manifest.get(key)
        if manifest.get(key) != known or not path.exists():
            raise MnistflowError(f"{directory}: {key} is missing or not the expected file (run the download step)")
        if not is_verified(path, known, stamps.get(key, {})):
            raise MnistflowError(f"{path}: changed since it was downloaded (its md5 is no longer {known}); "
                                 "run the download step again")
        md5[key] = known
    write_stamps(directory, md5, stamps)  # a `dvc checkout` gave the files new times: hashed once, then trusted
    return dataset_files(data, directory, md5)
