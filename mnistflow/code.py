"""What "the code changed" means, for `dvc repro` and for retraining alike.

Every DVC stage depends on the whole pipeline packages below (dvc.yaml lists
them), and a retrain's code digest hashes exactly the files DVC hashes there:
every file under those folders but the ones ``.dvcignore`` leaves out (Python's
byte-code caches). So a retrain skips or reruns on the same grounds as
`dvc repro`; tests/test_code_rule.py fails if the two drift apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# The packages a pipeline step runs. flows/ and tasks/ only orchestrate them.
PIPELINE_PACKAGES = ("mnistflow", "models")
# Left out of the digest, as .dvcignore leaves them out of DVC's hashes.
IGNORED_DIRS = ("__pycache__",)
# Where the running code lives: the checkout for `python -m ...` and a worker.
CODE_ROOT = Path(__file__).resolve().parent.parent


def code_files(root: Path = CODE_ROOT) -> list[Path]:
    """The files of the pipeline packages, relative to ``root``, sorted."""
    files = []
    for package in PIPELINE_PACKAGES:
        for path in (root / package).rglob("*"):
            rel = path.relative_to(root)
            if path.is_file() and not set(rel.parts) & set(IGNORED_DIRS):
                files.append(rel)
    return sorted(files)


def code_digest(root: Path = CODE_ROOT) -> str:
    h = hashlib.sha256()
    for rel in code_files(root):
        h.update(rel.as_posix().encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()
