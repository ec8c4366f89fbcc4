"""One rule for "the code changed": dvc.yaml's code deps and the retrain's code digest."""

from pathlib import Path

import yaml

from mnistflow.code import IGNORED_DIRS, PIPELINE_PACKAGES, code_digest, code_files
from tests.helpers import REPO

CODE_DEPS = {f"{package}/" for package in PIPELINE_PACKAGES}


def test_every_stage_depends_on_exactly_the_pipeline_packages():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = set(stage["deps"])
        code = {d for d in deps if not d.startswith(("data/", "outputs/"))}
        assert code == CODE_DEPS, name
        assert PIPELINE_PACKAGES == tuple(sorted(PIPELINE_PACKAGES))


def test_dvcignore_leaves_out_what_the_digest_leaves_out():
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dvcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert set(IGNORED_DIRS) <= ignored


def _tree(root: Path) -> Path:
    for rel in ("mnistflow/a.py", "mnistflow/sub/b.py", "models/m.py", "tasks/t.py", "flows/f.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    return root


def test_digest_changes_with_the_packages_and_nothing_else(tmp_path):
    root = _tree(tmp_path)
    assert [p.as_posix() for p in code_files(root)] == ["mnistflow/a.py", "mnistflow/sub/b.py", "models/m.py"]
    before = code_digest(root)
    (root / "tasks/t.py").write_text("# orchestration only\n")
    (root / "mnistflow/__pycache__").mkdir()
    (root / "mnistflow/__pycache__/a.cpython-311.pyc").write_bytes(b"\0")
    assert code_digest(root) == before
    (root / "models/m.py").write_text("# changed\n")
    assert code_digest(root) != before
