"""What "the code changed" means, for `dvc repro` and for retraining alike.

A DVC stage runs ``python -m mnistflow.dvc_stages.<name>``. Its code is that
module and every project module it imports, each file's imports followed at any
depth. Nothing else: an edit to the service, the registry, a report, a test
helper or another DVC stage's module is not its business. A package whose every
file is reached is listed as its folder (``models/``).

Nor the ``HARNESS``: modules a DVC stage runs that can stop it, say why, or make
it faster, but never change a byte it writes (the command line, whose folders
dvc.yaml's ``cmd`` names and DVC hashes; the checks before a step; the exit and
its codes; the private-API shortcuts; and the network: whatever a mirror serves
is checked against the params' checksums before it is stored). Their imports are
not followed either. So an edit to an error's wording or a new mirror reruns
nothing. tests/unit/test_code_rule.py keeps a snapshot of the files that are the
model's identity: a file that enters it, or leaves it, is a decision someone
made there.

``dvc.yaml`` lists exactly these paths under each DVC stage's ``deps``
(tests/unit/test_code_rule.py fails when the two drift apart; ``python -m
mnistflow.code`` prints them). A retrain's code digest hashes the code of the
DVC stages that decide the model's bytes (split and train), so a retrain skips
or reruns on the same grounds as `dvc repro` does for those stages.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

# Where the running code lives: the checkout for `python -m ...` and a worker.
CODE_ROOT = Path(__file__).resolve().parent.parent
DVC_STAGE_PACKAGE = "mnistflow.dvc_stages"
# The DVC stages whose code decides model.pt's bytes: what a retrain's fingerprint hashes.
MODEL_DVC_STAGES = ("split", "train")
# Can stop a DVC stage or speed it up; never change what it writes (see above).
HARNESS = ("mnistflow.dvc_stages.command", "mnistflow.entry", "mnistflow.preflight", "mnistflow.private_api",
           "mnistflow.fetch", "mnistflow.mirrors")
# Left out of the digest, as .dvcignore leaves them out of DVC's hashes.
IGNORED_DIRS = ("__pycache__",)


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(root: Path, module: str) -> list[Path]:
    """The module's file and every package ``__init__`` that importing it runs."""
    parts, found = module.split("."), []
    for depth in range(1, len(parts) + 1):
        path = _module_file(root, ".".join(parts[:depth]))
        if path is not None:
            found.append(path)
    return found


def _imported(root: Path, file: Path, nodes: list[ast.AST]) -> list[Path]:
    """The project files the import statements among ``nodes`` (walked whole) load."""
    package = ".".join(file.relative_to(root).with_suffix("").parts)
    if file.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[Path] = []
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import name``: name may be a submodule of pkg
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name and _module_file(root, name):
                found += _with_packages(root, name)
    return found


def dvc_stage_names(root: Path = CODE_ROOT) -> list[str]:
    """The DVC stages, in dvc.yaml's order (the package's ``DVC_STAGES``)."""
    init = _module_file(root, DVC_STAGE_PACKAGE)
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DVC_STAGES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise KeyError(f"{init}: no DVC_STAGES")


def _harness_files(root: Path) -> set[Path]:
    return {path for module in HARNESS if (path := _module_file(root, module)) is not None}


@lru_cache(maxsize=None)
def _closure(root: Path, stage: str, through_harness: bool = False) -> tuple[Path, ...]:
    """``stage``'s files; ``through_harness``: every file it reaches, the harness too."""
    module = f"{DVC_STAGE_PACKAGE}.{stage}"
    if stage not in dvc_stage_names(root) or _module_file(root, module) is None:
        raise KeyError(f"{DVC_STAGE_PACKAGE} has no DVC stage {stage!r}")
    seen: set[Path] = set()
    if not through_harness:
        seen |= _harness_files(root)  # as if already seen: neither listed nor followed
    todo = _with_packages(root, module)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo += _imported(root, file, [ast.parse(file.read_text())])
    return tuple(sorted(seen if through_harness else seen - _harness_files(root)))


def dvc_stage_files(stage: str, root: Path = CODE_ROOT) -> list[Path]:
    """Every file of ``stage``'s code, relative to ``root``, sorted."""
    return [path.relative_to(root) for path in _closure(Path(root), stage)]


def reached_files(stage: str, root: Path = CODE_ROOT) -> list[Path]:
    """Every project file ``stage`` imports, its harness included, relative to ``root``."""
    return [path.relative_to(root) for path in _closure(Path(root), stage, through_harness=True)]


def _package_files(root: Path, package: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / package).rglob("*.py")
            if not set(p.relative_to(root).parts) & set(IGNORED_DIRS)}


def dvc_stage_deps(stage: str, root: Path = CODE_ROOT) -> list[str]:
    """``stage``'s code as dvc.yaml lists it: files, and a folder for a package used whole."""
    files = set(dvc_stage_files(stage, root))
    packages = {f.parts[0] for f in files if len(f.parts) > 1}
    whole = sorted(p for p in packages if _package_files(root, Path(p)) <= files)
    listed = [f"{package}/" for package in whole]
    listed += [f.as_posix() for f in sorted(files) if f.parts[0] not in whole]
    return listed


def code_files(root: Path = CODE_ROOT) -> list[Path]:
    """The files a retrain's code digest hashes: the model stages' code."""
    return sorted({f for stage in MODEL_DVC_STAGES for f in dvc_stage_files(stage, root)})


def code_digest(root: Path = CODE_ROOT) -> str:
    h = hashlib.sha256()
    for rel in code_files(root):
        h.update(rel.as_posix().encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def running_code_digest() -> str:
    """This process's code digest, computed once: what its checkpoints record."""
    return code_digest(CODE_ROOT)


def main() -> None:
    """``python -m mnistflow.code``: each DVC stage's code deps, as dvc.yaml lists them."""
    for stage in dvc_stage_names():
        print(f"{stage}:")
        for dep in dvc_stage_deps(stage):
            print(f"  - {dep}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
