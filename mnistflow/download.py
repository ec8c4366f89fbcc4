"""Step 1: fetch the four IDX files from the first mirror that serves them intact.

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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .datasets import DATASETS, FILE_NAMES, FILES, Checksum
from .errors import MirrorsFailedError, MnistflowError
from .idx import gunzip, parse_idx
from .params import DataParams

log = logging.getLogger(__name__)

MIRROR_ENV = "MNISTFLOW_MIRROR"
NDIM = {"train-images": 3, "train-labels": 1, "test-images": 3, "test-labels": 1}
HINT = (
    f"to work offline, put the four *-ubyte.gz files in a directory and set "
    f"{MIRROR_ENV}=/that/dir (or list it under data.mirrors in params.yaml)"
)


class _Corrupt(Exception):
    """The mirror answered, but with the wrong bytes: do not ask it again."""


class _Permanent(Exception):
    """The mirror cannot serve this file (404, no such directory)."""


@dataclass(frozen=True)
class DatasetFiles:
    """Where the verified files are, and the digest of their uncompressed content."""

    dataset: str
    directory: str
    paths: dict[str, str]
    md5: dict[str, str]  # of the uncompressed bytes
    digest: str


def mirror_list(data: DataParams, env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    configured = list(data.mirrors) if data.mirrors is not None else list(DATASETS[data.dataset].mirrors)
    extra = env.get(MIRROR_ENV, "").strip()
    return ([extra] if extra else []) + [m for m in configured if m != extra]


def expected_checksums(data: DataParams) -> dict[str, Checksum]:
    if data.checksums is not None:
        return {key: Checksum(md5, True) for key, md5 in data.checksums.items()}
    return DATASETS[data.dataset].checksums


MANIFEST = "checksums.json"


def dataset_dir(data: DataParams, data_root: Path) -> Path:
    return Path(data_root) / data.dataset


def stored_name(key: str) -> str:
    return FILE_NAMES[key].removesuffix(".gz")


def _stored_md5(key: str, path: Path, expected: str | None) -> str | None:
    """md5 of a stored file if it is a well-formed IDX file matching ``expected``."""
    raw = path.read_bytes()
    try:
        parse_idx(path, raw, NDIM[key])
    except MnistflowError:
        return None
    md5 = hashlib.md5(raw).hexdigest()
    return md5 if md5 == expected else None


def _verify(key: str, source: str, blob: bytes, checksum: Checksum) -> tuple[bytes, str]:
    """Check one fetched .gz file; return its uncompressed bytes and their md5."""
    try:
        raw = gunzip(Path(source), blob)
        parse_idx(Path(source), raw, NDIM[key])
    except MnistflowError as exc:
        raise _Corrupt(str(exc).split(": ", 1)[-1]) from None
    raw_md5 = hashlib.md5(raw).hexdigest()
    got = raw_md5 if checksum.uncompressed else hashlib.md5(blob).hexdigest()
    if got != checksum.md5:
        what = "uncompressed md5" if checksum.uncompressed else "md5 of the .gz"
        raise _Corrupt(f"{what} {got} is not the expected {checksum.md5}")
    return raw, raw_md5


def _fetch(mirror: str, name: str, timeout: float) -> bytes:
    if "://" not in mirror:
        path = Path(mirror).expanduser() / name
        if not path.parent.is_dir():
            raise _Permanent(f"no such directory {path.parent}")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise _Permanent(f"no file {name}") from None
    url = mirror.rstrip("/") + "/" + name
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        # 5xx and 429 are worth another try; 404 and friends are not.
        if exc.code >= 500 or exc.code == 429:
            raise OSError(f"HTTP {exc.code}") from None
        raise _Permanent(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


def _fetch_verified(key: str, mirror: str, checksum: Checksum, retries: int,
                    backoff: float, timeout: float) -> tuple[bytes, str]:
    """The uncompressed, verified bytes of one file from one mirror, and their md5."""
    name = FILE_NAMES[key]
    for attempt in range(retries + 1):
        try:
            blob = _fetch(mirror, name, timeout)
        except OSError as exc:  # connection refused, reset, timeout, 5xx
            if attempt == retries:
                raise _Permanent(f"{exc} (after {retries + 1} tries)") from None
            delay = backoff * 2**attempt
            log.warning("%s from %s failed (%s); retrying in %.1fs", name, mirror, exc, delay)
            time.sleep(delay)
            continue
        return _verify(key, f"{mirror.rstrip('/')}/{name}", blob, checksum)
    raise AssertionError("unreachable")


def download(data: DataParams, data_root: Path, *, retries: int = 2,
             backoff: float = 0.5, timeout: float = 60.0,
             env: dict[str, str] | None = None) -> DatasetFiles:
    """Make ``<data_root>/<dataset>/`` hold the four verified files; fetch only what is missing."""
    directory = dataset_dir(data, data_root)
    checksums = expected_checksums(data)
    mirrors = mirror_list(data, env)
    manifest_path = directory / MANIFEST
    # For datasets verified on their .gz bytes, the manifest remembers the md5 of
    # the uncompressed copy we verified, so a stored file can be re-checked.
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    md5: dict[str, str] = {}
    for key in FILES:
        target = directory / stored_name(key)
        expected = checksums[key].md5 if checksums[key].uncompressed else manifest.get(key)
        if target.exists():
            stored = _stored_md5(key, target, expected)
            if stored is not None:
                md5[key] = stored
                continue
            log.warning("%s does not verify; fetching it again", target)
        failures = []
        for mirror in mirrors:
            try:
                raw, md5[key] = _fetch_verified(key, mirror, checksums[key], retries, backoff, timeout)
            except (_Corrupt, _Permanent) as exc:
                failures.append(f"{mirror} ({exc})")
                log.warning("%s from %s: %s", FILE_NAMES[key], mirror, exc)
                continue
            atomic.write_bytes(target, raw)
            log.info("fetched %s from %s", FILE_NAMES[key], mirror)
            break
        else:
            raise MirrorsFailedError(
                f"could not get {FILE_NAMES[key]} for {data.dataset} from any mirror: "
                + "; ".join(failures) + f". {HINT}"
            )
    if manifest != md5:
        atomic.write_json(manifest_path, md5)
    return _dataset_files(data, directory, md5)


def _dataset_files(data: DataParams, directory: Path, md5: dict[str, str]) -> DatasetFiles:
    digest = hashlib.sha256("".join(f"{key}:{md5[key]}\n" for key in FILES).encode()).hexdigest()
    paths = {key: str(directory / stored_name(key)) for key in FILES}
    return DatasetFiles(data.dataset, str(directory), paths, md5, digest)


def locate(data: DataParams, data_root: Path) -> DatasetFiles:
    """The files the download step verified, from its manifest, without re-reading them.

    For the steps after a download (DVC stages run as separate processes, and DVC
    itself hashes data/<dataset>): hashing 55 MB again in each would be work done
    twice. The manifest must match the expected checksums where they are known.
    """
    directory = dataset_dir(data, data_root)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        raise MnistflowError(f"{directory / MANIFEST}: missing or unreadable (run the download step first)") from None
    checksums = expected_checksums(data)
    for key in FILES:
        known = checksums[key].md5 if checksums[key].uncompressed else manifest.get(key)
        if manifest.get(key) != known or not (directory / stored_name(key)).exists():
            raise MnistflowError(f"{directory}: {key} is missing or not the expected file (run the download step)")
    return _dataset_files(data, directory, manifest)
