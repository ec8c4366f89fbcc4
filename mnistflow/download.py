"""The download stage: fetch the four IDX files from the first mirror that serves them intact.

A file is verified before it is published under its final name, so later steps
never see an unverified byte; a file already there that verifies is never
fetched again. Files are stored *uncompressed*: the bytes (and so DVC's hashes)
are the same whichever mirror served them, however it compressed them, and
loading skips a gunzip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .dataset_check import DatasetShape, check_dataset
from .datasets import DATASETS, FILE_NAMES, FILES, Checksum
from .errors import MirrorsFailedError, MnistflowError
from .fetch import Limits, Stalled, Transient, Unusable, WrongBytes, fetch
from .increments import Increment, combined_digest, list_increments
from .params import DataParams

log = logging.getLogger(__name__)

# One setting for every dataset: a directory (or URL) with one folder per dataset,
# named as data.dataset names it (mnist/, fashion-mnist/, kmnist/), as torchvision's
# ``root`` is laid out. And the older form, one mirror tried first whatever the dataset.
MIRROR_ROOT_ENV = "MNISTFLOW_MIRROR_ROOT"
MIRROR_ENV = "MNISTFLOW_MIRROR"
NDIM = {"train-images": 3, "train-labels": 1, "test-images": 3, "test-labels": 1}
HINT = (
    f"to work offline, put each dataset's four *-ubyte.gz files in a folder named after it "
    f"(mnist/, fashion-mnist/, ...) under one directory and set {MIRROR_ROOT_ENV}=/that/dir "
    f"(or set {MIRROR_ENV} to one dataset's folder, or list it under data.mirrors in params.yaml)"
)


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


def expected_size(data: DataParams, key: str) -> int | None:
    """Bytes of an uncompressed file of a published dataset (None for a custom one)."""
    spec = DATASETS.get(data.dataset)
    if spec is None:
        return None
    n = spec.train_size if key.startswith("train") else spec.test_size
    return 16 + n * 28 * 28 if key.endswith("images") else 8 + n


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _hash_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def _verified(path: Path, expected: str | None, stamp: dict) -> bool:
    """Is ``path`` the file whose uncompressed md5 is ``expected``?

    Trusted without a read when its size and modification time are the ones
    stamped when it verified; hashed again when either differs.
    """
    if expected is None or not path.exists():
        return False
    if stamp.get("md5") == expected and {k: stamp.get(k) for k in ("size", "mtime_ns")} == _stat(path):
        return True
    return _hash_file(path) == expected


def _stamps_path(directory: Path) -> Path:
    # Beside the tracked folder: data/.stamps/mnist.json, data/.stamps/custom-<key>.json.
    if directory.parent.name == "custom":
        return directory.parent.parent / STAMPS / f"custom-{directory.name}.json"
    return directory.parent / STAMPS / f"{directory.name}.json"


def _stamps(directory: Path) -> dict[str, dict]:
    try:
        stamps = json.loads(_stamps_path(directory).read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _stamp(directory: Path, md5: dict[str, str], recorded: dict[str, dict]) -> None:
    """Record each verified file's size and time; best effort (a read-only data root
    keeps working, hashing again)."""
    stamps = {key: {"md5": md5[key], **_stat(directory / stored_name(key))} for key in FILES}
    if stamps != recorded:
        try:
            atomic.write_json(_stamps_path(directory), stamps)
        except (OSError, MnistflowError) as exc:
            log.debug("could not record %s: %s", _stamps_path(directory), exc)


def _fetch_verified(data: DataParams, key: str, mirror: str, checksum: Checksum, target: Path,
                    retries: int, backoff: float, limits: Limits) -> str:
    """Fetch one file from one mirror into ``target`` (a temporary path); its uncompressed md5."""
    name = FILE_NAMES[key]
    for attempt in range(retries + 1):
        try:
            return fetch(mirror, name, NDIM[key], expected_size(data, key), checksum.md5,
                         checksum.uncompressed, target, limits).md5
        except Transient as exc:  # refused, reset, 5xx, closed mid-body
            if attempt == retries:
                raise Transient(f"{exc} (after {retries + 1} tries)") from None
            delay = backoff * 2**attempt
            log.warning("%s from %s failed (%s); retrying in %.1fs", name, mirror, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _failure_hint(data: DataParams, key: str, wrong: list[WrongBytes]) -> str:
    if not wrong:
        return HINT
    served = next((w.uncompressed_md5 for w in wrong if w.uncompressed_md5), None)
    if served and data.checksums is None and not DATASETS[data.dataset].checksums[key].uncompressed:
        # Only the .gz md5 is published: a genuine but re-compressed copy can only be
        # verified by content, against md5s the user vouches for.
        return (f"{data.dataset} publishes only the md5 of its .gz files; if this is a genuine copy, "
                f"re-compressed, verify it by content: set data.checksums in params.yaml to the md5s of "
                f"the four uncompressed files (this copy's {key}: {served})")
    return "the mirrors answered with the wrong bytes; check the mirror's copy, or data.checksums"


def download(data: DataParams, data_root: Path, *, retries: int = 2, backoff: float = 0.5,
             limits: Limits = Limits(), env: dict[str, str] | None = None) -> DatasetFiles:
    """Make ``<data_root>/<dataset>/`` hold the four verified files; fetch only what is missing."""
    directory = dataset_dir(data, data_root)
    checksums = expected_checksums(data)
    mirrors = mirror_list(data, env)
    written, stamps = _read_manifest(directory), _stamps(directory)
    recorded = _md5s(written)
    md5: dict[str, str] = {}
    for key in FILES:
        target = directory / stored_name(key)
        expected = checksums[key].md5 if checksums[key].uncompressed else recorded.get(key)
        if _verified(target, expected, stamps.get(key, {})):
            md5[key] = expected
            continue
        if target.exists():
            log.warning("%s does not verify; fetching it again", target)
        failures, wrong, transient = [], [], False
        for mirror in mirrors:
            try:
                with atomic.atomic_path(target) as tmp:
                    md5[key] = _fetch_verified(data, key, mirror, checksums[key], tmp, retries, backoff, limits)
            except (Transient, Stalled, Unusable, WrongBytes) as exc:
                failures.append(f"{mirror} ({exc})")
                transient |= isinstance(exc, Transient)
                if isinstance(exc, WrongBytes):
                    wrong.append(exc)
                log.warning("%s from %s: %s", FILE_NAMES[key], mirror, exc)
                continue
            log.info("fetched %s from %s", FILE_NAMES[key], mirror)
            break
        else:
            # Only a network that may come back is worth a later try; wrong bytes and
            # silent servers would fail the same way again.
            raise MirrorsFailedError(
                f"could not get {FILE_NAMES[key]} for {data.dataset} from any mirror: "
                + "; ".join(failures) + f". {_failure_hint(data, key, wrong)}", retryable=transient)
    # The files against each other, before the manifest that every later step needs.
    shape = check_dataset({key: directory / stored_name(key) for key in FILES})
    if written != md5:  # an older one (with sizes and times) is rewritten too
        atomic.write_json(directory / MANIFEST, {key: md5[key] for key in FILES})
    _stamp(directory, md5, stamps)
    return _dataset_files(data, directory, md5, shape)


def _read_manifest(directory: Path) -> dict:
    """The manifest as it is on disk ({} when missing or unreadable)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _md5s(manifest: dict) -> dict[str, str]:
    """What the download step verified: per file its md5."""
    # An older manifest held each file's size and time too: its md5s stand.
    return {k: v.get("md5") if isinstance(v, dict) else v for k, v in manifest.items()}


def _dataset_files(data: DataParams, directory: Path, md5: dict[str, str],
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
    manifest, stamps = _md5s(_read_manifest(directory)), _stamps(directory)
    if not manifest:
        raise MnistflowError(f"{directory / MANIFEST}: missing or unreadable (run the download step first)")
    checksums = expected_checksums(data)
    md5 = {}
    for key in FILES:
        path = directory / stored_name(key)
        known = checksums[key].md5 if checksums[key].uncompressed else manifest.get(key)
        if manifest.get(key) != known or not path.exists():
            raise MnistflowError(f"{directory}: {key} is missing or not the expected file (run the download step)")
        if not _verified(path, known, stamps.get(key, {})):
            raise MnistflowError(f"{path}: changed since it was downloaded (its md5 is no longer {known}); "
                                 "run the download step again")
        md5[key] = known
    _stamp(directory, md5, stamps)  # a `dvc checkout` gave the files new times: hashed once, then trusted
    return _dataset_files(data, directory, md5)
