"""The download stage: fetch the four IDX files from the first mirror that serves them intact.

A file is verified before it is published under its final name, so later steps
never see an unverified byte; a file already there that verifies is never
fetched again. Files are stored *uncompressed*: the bytes (and so DVC's hashes)
are the same whichever mirror served them, however it compressed them, and
loading skips a gunzip. The steps after it find the files again with
``mnistflow.dataset_files.locate``, without this module or the network.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import atomic
from .dataset_check import check_dataset
from .dataset_files import (MANIFEST, DatasetFiles, dataset_dir, dataset_files, expected_checksums, is_verified,
                            manifest_md5s, read_manifest, read_stamps, stored_name, write_stamps)
from .datasets import Checksum, DATASETS, FILES, FILE_NAMES
from .errors import MirrorsFailedError
from .fetch import Limits, Stalled, Transient, Unusable, WrongBytes, fetch
from .mirrors import HINT, mirror_list
from .params import DataParams

log = logging.getLogger(__name__)

NDIM = {"train-images": 3, "train-labels": 1, "test-images": 3, "test-labels": 1}


def expected_size(data: DataParams, key: str) -> int | None:
    """Bytes of an uncompressed file of a published dataset (None for a custom one)."""
    spec = DATASETS.get(data.dataset)
    if spec is None:
        return None
    n = spec.train_size if key.startswith("train") else spec.test_size
    return 16 + n * 28 * 28 if key.endswith("images") else 8 + n


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
    written, stamps = read_manifest(directory), read_stamps(directory)
    recorded = manifest_md5s(written)
    md5: dict[str, str] = {}
    for key in FILES:
        target = directory / stored_name(key)
        expected = checksums[key].md5 if checksums[key].uncompressed else recorded.get(key)
        if is_verified(target, expected, stamps.get(key, {})):
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
    write_stamps(directory, md5, stamps)
    return dataset_files(data, directory, md5, shape)


