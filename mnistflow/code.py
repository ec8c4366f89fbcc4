"""What "the code changed" means, for `dvc repro` and for retraining alike.

A DVC stage runs ``python -m mnistflow.stages STAGE``. Its code is that
module's own imports plus those of its ``stage_<name>`` function (and of the
helpers it calls), followed through every project module they reach, each
file's imports at any depth. Nothing else: an edit to the service, the
registry, a report or a test helper is no stage's business. A package whose
every file is reached is listed as its folder (``models/``).

Nor the ``HARNESS``: modules a stage runs that can stop it, say why, or make it
faster, but never change a byte it writes (the checks before a step, the exit
and its codes, the private-API shortcuts, and the network: whatever a mirror
serves is checked against the params' checksums before it is stored). Their
imports are not followed either. So an edit to an error's wording or a new
mirror reruns nothing. tests/unit/test_code_rule.py keeps a snapshot of the files
that are the model's identity: a file that enters it, or leaves it, is a
decision someone made there.

``dvc.yaml`` lists exactly these paths under each stage's ``deps``
(tests/unit/test_code_rule.py fails when the two drift apart; ``python -m
mnistflow.code`` prints them). A retrain's code digest hashes the code of the
stages that decide the model's bytes (split and train), so a retrain skips or
reruns on the same grounds as `dvc repro` does for those stages.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

# Where the running code lives: the checkout for `python -m ...` and a worker.
CODE_ROOT = Path(__file__).resolve().parent.parent
STAGE_MODULE = "mnistflow.stages"
STAGE_PREFIX = "stage_"
# The stages whose code decides model.pt's bytes: what a retrain's fingerprint hashes.
MODEL_STAGES = ("split", "train")
# Can stop a stage or speed it up; never change what it writes (see above).
HARNESS = ("mnistflow.entry", "mnistflow.preflight", "mnistflow.private_api", "mnistflow.fetch", "mnistflow.mirrors")
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


def _entry_nodes(tree: ast.Module, stage: str) -> list[ast.AST]:
    """The stage module's top level, ``main``, and ``stage_<stage>`` with the helpers they
    call; never another stage's function."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    wanted, todo = set(), ["main", f"{STAGE_PREFIX}{stage}"]
    while todo:
        name = todo.pop()
        if name in wanted or name not in functions:
            continue
        wanted.add(name)
        todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name)
                 and not n.id.startswith(STAGE_PREFIX)]
    top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return top + [functions[name] for name in sorted(wanted)]


def stage_names(root: Path = CODE_ROOT) -> list[str]:
    tree = ast.parse(_module_file(root, STAGE_MODULE).read_text())
    return [n.name.removeprefix(STAGE_PREFIX) for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith(STAGE_PREFIX)]


def _harness_files(root: Path) -> set[Path]:
    return {path for module in HARNESS if (path := _module_file(root, module)) is not None}


@lru_cache(maxsize=None)
def _closure(root: Path, stage: str, through_harness: bool = False) -> tuple[Path, ...]:
    """``stage``'s files; ``through_harness``: every file it reaches, the harness too."""
    entry = _module_file(root, STAGE_MODULE)
    tree = ast.parse(entry.read_text())
    if f"{STAGE_PREFIX}{stage}" not in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}:
        raise KeyError(f"{STAGE_MODULE} has no {STAGE_PREFIX}{stage}")
    seen = set(_with_packages(root, STAGE_MODULE))
    if not through_harness:
        seen |= _harness_files(root)  # as if already seen: neither listed nor followed
    todo = _imported(root, entry, _entry_nodes(tree, stage))
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo += _imported(root, file, [ast.parse(file.read_text())])
    return tuple(sorted(seen if through_harness else seen - _harness_files(root)))


def stage_files(stage: str, root: Path = CODE_ROOT) -> list[Path]:
    """Every file of ``stage``'s code, relative to ``root``, sorted."""
    return [path.relative_to(root) for path in _closure(Path(root), stage)]


def reached_files(stage: str, root: Path = CODE_ROOT) -> list[Path]:
    """Every project file ``stage`` imports, its harness included, relative to ``root``."""
    return [path.relative_to(root) for path in _closure(Path(root), stage, through_harness=True)]


def _package_files(root: Path, package: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / package).rglob("*.py")
            if not set(p.relative_to(root).parts) & set(IGNORED_DIRS)}


def stage_deps(stage: str, root: Path = CODE_ROOT) -> list[str]:
    """``stage``'s code as dvc.yaml lists it: files, and a folder for a package used whole."""
    files = set(stage_files(stage, root))
    packages = {f.parts[0] for f in files if len(f.parts) > 1}
    whole = sorted(p for p in packages if _package_files(root, Path(p)) <= files)
    listed = [f"{package}/" for package in whole]
    listed += [f.as_posix() for f in sorted(files) if f.parts[0] not in whole]
    return listed


def code_files(root: Path = CODE_ROOT) -> list[Path]:
    """The files a retrain's code digest hashes: the model stages' code."""
    return sorted({f for stage in MODEL_STAGES for f in stage_files(stage, root)})


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
    """``python -m mnistflow.code``: each stage's code deps, as dvc.yaml lists them."""
    for stage in stage_names():
        print(f"{stage}:")
        for dep in stage_deps(stage):
            print(f"  - {dep}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
