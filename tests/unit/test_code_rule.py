"""One rule for "the code changed": each DVC stage's code is what it imports, dvc.yaml lists
exactly that, and the retrain's code digest hashes the model stages' code."""

from pathlib import Path

import yaml

from mnistflow.code import (
    HARNESS,
    IGNORED_DIRS,
    MODEL_DVC_STAGES,
    code_digest,
    code_files,
    reached_files,
    dvc_stage_deps,
    dvc_stage_files,
    dvc_stage_names,
)
from tests.helpers import PIPELINE_STAGES, REPO

NOT_PIPELINE = ("serving", "lifecycle", "pictures", "harness", "tasks", "flows", "tests", "bench", "docs")

# The model's identity: the files whose bytes decide model.pt's (the split and train
# stages' code, mnistflow.code.code_files), which a retrain's fingerprint and every
# checkpoint hash. A file that enters or leaves this list reruns training everywhere:
# change it here only as a decision, with the reason in the commit.
MODEL_IDENTITY = [
    "mnistflow/__init__.py", "mnistflow/atomic.py", "mnistflow/checkpoints.py", "mnistflow/code.py",
    "mnistflow/dataset_check.py", "mnistflow/dataset_files.py", "mnistflow/datasets.py", "mnistflow/device.py",
    "mnistflow/dvc_stages/__init__.py", "mnistflow/dvc_stages/ready.py", "mnistflow/dvc_stages/split.py",
    "mnistflow/dvc_stages/train.py", "mnistflow/errors.py", "mnistflow/idx.py", "mnistflow/increments.py",
    "mnistflow/params.py", "mnistflow/paths.py", "mnistflow/scoring.py", "mnistflow/session.py", "mnistflow/split.py",
    "mnistflow/starting_point.py", "mnistflow/tensors.py", "mnistflow/train.py", "mnistflow/weight_average.py",
    "mnistflow/yaml_file.py", "models/__init__.py", "models/checkpoint.py", "models/cnn.py", "models/mlp.py",
    "models/networks.py",
]


def _code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if not d.startswith(("data/", "outputs/"))]


def test_dvc_yaml_lists_exactly_each_stages_derived_code():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == dvc_stage_names() == list(PIPELINE_STAGES)
    for name, stage in stages.items():
        assert _code_deps(stage) == dvc_stage_deps(name), (
            f"dvc.yaml's {name} stage lists other code than it imports; `python -m mnistflow.code` "
            "prints what to list")


def test_no_stage_depends_on_serving_lifecycle_or_harness():
    for name in dvc_stage_names():
        rooms = {path.parts[0] for path in dvc_stage_files(name)}
        assert rooms <= {"mnistflow", "models"}, (name, rooms)
        assert not rooms & set(NOT_PIPELINE)


def test_each_stage_has_its_own_code():
    plot, train = set(dvc_stage_files("plot")), set(dvc_stage_files("train"))
    assert Path("mnistflow/plots.py") in plot and Path("mnistflow/train.py") not in plot
    assert Path("mnistflow/train.py") in train and Path("mnistflow/plots.py") not in train
    assert Path("mnistflow/export.py") not in train  # training's validation measure is scoring.py alone
    assert not any(p.parts[0] == "models" for p in dvc_stage_files("download"))


def test_dvcignore_leaves_out_what_the_digest_leaves_out():
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dvcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert set(IGNORED_DIRS) <= ignored


def test_the_models_identity_is_a_decision_someone_made():
    identity = [path.as_posix() for path in code_files()]
    assert identity == MODEL_IDENTITY, (
        f"entered: {sorted(set(identity) - set(MODEL_IDENTITY))}; left: {sorted(set(MODEL_IDENTITY) - set(identity))}. "
        "Each entering file retrains every model: keep it out of the split and train stages' imports, or, if its "
        "bytes do decide model.pt's, add it to MODEL_IDENTITY")


def test_the_harness_runs_in_every_stage_and_is_no_stages_code():
    harness = {Path(*module.split(".")).with_suffix(".py") for module in HARNESS}
    assert all((REPO / path).is_file() for path in harness), "HARNESS names a module that no longer exists"
    for name in dvc_stage_names():
        assert Path("mnistflow/preflight.py") in reached_files(name) and not harness & set(dvc_stage_files(name))
    # The network is the download stage's alone, and no stage's code at all.
    assert Path("mnistflow/download.py") not in set().union(*(dvc_stage_files(n) for n in dvc_stage_names() if n != "download"))
    assert Path("mnistflow/fetch.py") in reached_files("download") and Path("mnistflow/fetch.py") not in \
        dvc_stage_files("download")


def _tree(root: Path, names: tuple[str, str] = ("a", "b")) -> Path:
    first, second = names
    files = {
        "mnistflow/__init__.py": "",
        "mnistflow/dvc_stages/__init__.py": f"DVC_STAGES = ({first!r}, {second!r})\n",
        "mnistflow/dvc_stages/command.py": "from ..entryish import e\n",  # a HARNESS module: never followed
        f"mnistflow/dvc_stages/{first}.py": (
            "from ..common import shared\n"
            "from .command import main\n"
            "def run():\n    from ..a import run\n    from ..preflight import check\n"),
        f"mnistflow/dvc_stages/{second}.py": "from mnistflow import b\nfrom .command import main\n",
        "mnistflow/common.py": "import os\n",
        "mnistflow/entryish.py": "",
        "mnistflow/a.py": "from models import net\n",
        "mnistflow/b.py": "def later():\n    from .deep import x\n",
        "mnistflow/deep.py": "",
        "mnistflow/unused.py": "",
        "mnistflow/preflight.py": "from .guarded import g\n",  # a HARNESS module: never followed
        "mnistflow/guarded.py": "",
        "models/__init__.py": "from .net import Net\n",
        "models/net.py": "import torch\n",
        "serving/page.py": "from mnistflow import a\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_dvc_stage_is_its_module_and_what_it_imports(tmp_path):
    root = _tree(tmp_path)
    assert dvc_stage_names(root) == ["a", "b"]
    a = [p.as_posix() for p in dvc_stage_files("a", root)]
    assert a == ["mnistflow/__init__.py", "mnistflow/a.py", "mnistflow/common.py", "mnistflow/dvc_stages/__init__.py",
                 "mnistflow/dvc_stages/a.py", "models/__init__.py", "models/net.py"]
    assert [p.as_posix() for p in reached_files("a", root)] == sorted(a + [
        "mnistflow/dvc_stages/command.py", "mnistflow/entryish.py", "mnistflow/guarded.py", "mnistflow/preflight.py"])
    # Another DVC stage's module is never part of this one's code; imports inside
    # any function of a reached module are.
    b = [p.as_posix() for p in dvc_stage_files("b", root)]
    assert b == ["mnistflow/__init__.py", "mnistflow/b.py", "mnistflow/deep.py", "mnistflow/dvc_stages/__init__.py",
                 "mnistflow/dvc_stages/b.py"]
    assert dvc_stage_deps("a", root) == ["models/", "mnistflow/__init__.py", "mnistflow/a.py", "mnistflow/common.py",
                                         "mnistflow/dvc_stages/__init__.py", "mnistflow/dvc_stages/a.py"]


def test_digest_changes_with_the_model_stages_code_and_nothing_else(tmp_path):
    root = _tree(tmp_path, ("train", "plot"))
    (root / "mnistflow/dvc_stages/__init__.py").write_text('DVC_STAGES = ("split", "train", "plot")\n')
    (root / "mnistflow/dvc_stages/split.py").write_text("from ..common import shared\n")
    assert set(MODEL_DVC_STAGES) <= set(dvc_stage_names(root))
    before = code_digest(root)
    assert Path("mnistflow/a.py") in code_files(root) and Path("mnistflow/b.py") not in code_files(root)
    for rel in ("mnistflow/b.py", "mnistflow/unused.py", "serving/page.py",  # plotting's, nobody's, serving's
                "mnistflow/dvc_stages/plot.py", "mnistflow/dvc_stages/command.py"):  # another DVC stage's, the harness
        (root / rel).write_text("# changed\n")
    (root / "mnistflow/__pycache__").mkdir()
    (root / "mnistflow/__pycache__/a.cpython-311.pyc").write_bytes(b"\0")
    assert code_digest(root) == before
    (root / "models/net.py").write_text("# changed\n")
    assert code_digest(root) != before


def test_the_checkouts_digest_covers_split_and_train():
    files = code_files()
    assert Path("mnistflow/split.py") in files and Path("mnistflow/train.py") in files
    assert Path("mnistflow/plots.py") not in files and Path("mnistflow/card.py") not in files
    assert all(path.parts[0] in {"mnistflow", "models"} for path in files)
