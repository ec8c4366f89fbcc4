"""The champion is one unit: a promotion or a rollback killed at any step leaves the
old champion whole or the new one whole (issue 39, section 2).

A forked process runs the promotion and SIGKILLs itself just before its k-th
filesystem call (a write's fsync, a rename, a link, a removal), for every k until
one runs to the end. After each kill, every file of the champion must be the one
its record names, of one version, and the next promotion must succeed and clean up.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import pytest

from lifecycle import install, registry, versions
from lifecycle.registry_paths import RegistryPaths
from mnistflow.errors import MnistflowError
from mnistflow.paths import RunPaths

STEPS = (("os", "replace"), ("os", "rename"), ("os", "symlink"), ("os", "fsync"), ("os", "unlink"),
         ("os", "mkdir"), ("shutil", "rmtree"))


def full_run(folder: Path, tag: str) -> RunPaths:
    """A run folder with every file a champion holds, each saying which run made it."""
    run = RunPaths(folder)
    folder.mkdir(parents=True)
    run.model.write_bytes(f"model {tag}".encode())
    run.metrics.write_text(json.dumps({"test": {"accuracy": 0.9}, "tag": tag}))
    run.evaluation.write_text(json.dumps({"tag": tag}))
    run.onnx.write_bytes(f"onnx {tag}".encode())
    run.card.write_text(f"card {tag}")
    run.profile.write_text(json.dumps({"tag": tag}))
    return run


def promote(reg: RegistryPaths, run: RunPaths, tag: str) -> None:
    registry.promote(run, reg, {"run_id": tag, "time": registry.now()})


def _die_at(step: int, action) -> None:
    calls = 0

    def dying(original):
        def call(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return call

    for module, name in STEPS:
        owner = os if module == "os" else shutil
        setattr(owner, name, dying(getattr(owner, name)))
    action()
    os._exit(0)


def killed_at(step: int, action) -> bool:
    """Run ``action`` in a forked process that SIGKILLs itself at its ``step``-th filesystem call;
    whether it was killed (False: it finished first)."""
    child = multiprocessing.get_context("fork").Process(target=_die_at, args=(step, action))
    child.start()
    child.join(60)
    assert child.exitcode in (0, -signal.SIGKILL), child.exitcode
    return child.exitcode != 0


def champion_tag(reg: RegistryPaths) -> str:
    """Which run the whole champion came from; fails if its files disagree with its record or each other."""
    record = registry.read_champion(reg)  # every file against its recorded sha256
    assert record is not None
    tags = {reg.champion_model.read_bytes().decode().split()[-1], reg.champion_onnx.read_bytes().decode().split()[-1],
            reg.champion_card.read_text().split()[-1], json.loads(reg.champion_metrics.read_text())["tag"],
            json.loads(reg.champion_evaluation.read_text())["tag"], json.loads(reg.champion_profile.read_text())["tag"],
            record["run_id"]}
    assert len(tags) == 1, f"a champion of two models: {tags}"
    assert set(record["files"]) | {"record.json"} == {p.name for p in reg.champion.iterdir()}
    return tags.pop()


def test_a_promotion_killed_at_any_step_leaves_one_whole_champion(tmp_path):
    for step in range(1, 200):
        root = tmp_path / f"step{step}"
        reg = RegistryPaths(root / "registry")
        promote(reg, full_run(root / "run1", "v1"), "v1")
        run = full_run(root / "run2", "v2")
        if not killed_at(step, lambda: promote(reg, run, "v2")):
            assert champion_tag(reg) == "v2"
            assert step > 10, f"only {step} steps were tried: the kill points are not being reached"
            return
        assert champion_tag(reg) in ("v1", "v2")
        promote(reg, full_run(root / "run3", "v3"), "v3")  # the next promotion works, and tidies up
        assert champion_tag(reg) == "v3"
        assert not [p for p in (reg.dir / "installed").iterdir() if p.name.startswith(".")]
        assert not list(reg.dir.glob(".champion-*"))
        shutil.rmtree(root)
    pytest.fail("the promotion never finished")


def test_a_rollback_killed_at_any_step_leaves_one_whole_champion(tmp_path):
    for step in range(1, 200):
        root = tmp_path / f"step{step}"
        reg = RegistryPaths(root / "registry")
        for tag in ("v1", "v2"):
            promote(reg, full_run(root / tag, tag), tag)
        if not killed_at(step, lambda: registry.rollback(reg, 1, "test", {})):
            assert champion_tag(reg) == "v1"
            return
        assert champion_tag(reg) in ("v1", "v2")
        shutil.rmtree(root)
    pytest.fail("the rollback never finished")


def test_a_champion_folder_from_before_links_is_adopted_then_switched(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    reg.champion.mkdir(parents=True)
    reg.champion_model.write_bytes(b"old champion")
    reg.champion_record.write_text(json.dumps({"run_id": "old", "version": 1,
                                               "model_sha256": hashlib.sha256(b"old champion").hexdigest()}))
    promote(reg, full_run(tmp_path / "run", "v2"), "v2")
    assert reg.champion.is_symlink() and champion_tag(reg) == "v2"
    assert install.serving_folder(reg).parent == reg.dir / "installed"


def test_old_installed_folders_are_removed_but_the_previous_one(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    for i in range(1, 5):
        promote(reg, full_run(tmp_path / f"run{i}", f"v{i}"), f"v{i}")
    folders = sorted(p.name.split("-")[0] for p in (reg.dir / "installed").iterdir())
    assert folders == ["3", "4"]  # the champion's, and the one a reader may still be reading
    assert versions.version_numbers(reg) == [1, 2, 3, 4]


def test_a_champion_file_changed_behind_the_registry_is_named(tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    promote(reg, full_run(tmp_path / "run", "v1"), "v1")
    reg.champion_profile.write_text("{}")  # the drift baseline of another model
    with pytest.raises(MnistflowError, match=r"profile.json: sha256 \w+ is not the \w+ recorded"):
        registry.read_champion(reg)


def test_the_history_says_what_served_when(tmp_path):
    from datetime import datetime, timedelta, timezone

    reg = RegistryPaths(tmp_path / "registry")
    for tag in ("v1", "v2"):
        registry.promote(full_run(tmp_path / tag, tag), reg, {"run_id": tag, "time": registry.now(),
                                                             "reason": f"{tag} is better", "trigger": {"increment": "x"}})
    registry.rollback(reg, 1, "a bad week", {"flow_run_id": "f"})
    history = registry.read_history(reg)
    assert [(e["event"], e["version"]) for e in history] == [("promotion", 1), ("promotion", 2), ("rollback", 1)]
    assert history[1]["reason"] == "v2 is better" and history[1]["trigger"] == {"increment": "x"}
    assert history[2]["from_version"] == 2 and history[2]["reason"] == "a bad week"
    at = datetime.fromisoformat(history[1]["time"])
    assert registry.serving_at(reg, at)["version"] == 2
    assert registry.serving_at(reg, at - timedelta(days=1)) is None
    assert registry.serving_at(reg, datetime.now(timezone.utc))["version"] == 1


def test_a_versions_lineage_runs_through_its_warm_starts():
    from lifecycle.retraction import learned_increments

    records = {1: {"increments": ["a"]}, 2: {"increments": ["a", "b"], "warm_start": {"version": 1}},
               3: {"increments": ["c"], "warm_start": {"version": 2}}, 4: {"increments": ["c"]}}
    assert learned_increments(records, 3) == {"a", "b", "c"}  # 3 never trained on b, but started from a model that did
    assert learned_increments(records, 4) == {"c"}


def test_only_ascii_digits_name_versions_and_a_damaged_one_is_one_line(tmp_path):
    from flows.rollback import version_table

    reg = RegistryPaths(tmp_path / "registry")
    promote(reg, full_run(tmp_path / "run", "v1"), "v1")
    for stray in ("²", "٣"):
        (versions.versions_dir(reg) / stray).mkdir()
    (versions.versions_dir(reg) / "2").mkdir()
    (versions.versions_dir(reg) / "2" / "record.json").write_text("garbage {")
    assert versions.version_numbers(reg) == [1, 2]
    rows = versions.list_versions(reg)
    table = version_table(rows).splitlines()
    # Columns line up under their header, and the champion is named so, in its own column.
    assert table[0].index("time") == table[1].index(rows[0]["time"]) and table[1].split()[:2] == ["1", "champion"]
    assert table[2].split() == ["2", "damaged:", "record.json:", "Expecting", "value:", "line", "1", "column", "1",
                                "(char", "0)"]


def test_a_manifest_time_without_a_zone_is_one_line_naming_it(tmp_path):
    from flows.retrain import added_time
    from mnistflow.increments import Increment

    naive = Increment("x", str(tmp_path / "x"), "", "", (), "2026-12-01T00:00:00")
    with pytest.raises(MnistflowError, match=r"x/manifest.json: time '2026-12-01T00:00:00' is not an ISO 8601 time "
                                             "with its time zone"):
        added_time(naive)
    with pytest.raises(MnistflowError, match="time 'yesterday' is not an ISO 8601 time"):
        added_time(Increment("x", str(tmp_path / "x"), "", "", (), "yesterday"))
