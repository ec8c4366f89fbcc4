from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

# As flows/__init__.py sets it for every flow process, before Prefect reads its settings:
# pipeline code logging outside a flow run (a plain test after an in-process flow test)
# has no run to send its lines to, and that is no warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from harness.real_parts import SESSION_ENV, session_leftovers
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from tests.helpers import tiny_params, write_dataset

# A test's kind is its folder, as in Prefect's own repository:
# - tests/unit: in this process, nothing started (no server, no worker, no child
#   process, no dvc), no real data: `make unit`, the inner loop;
# - tests/integration: processes, servers, dvc, the command lines, on generated data;
# - tests/acceptance: the real MNIST (or Fashion-MNIST) end to end.
KINDS = ("unit", "integration", "acceptance")
PROCESS_FIXTURES = {"prefect_server", "small_disk", "postgres", "s3"}
REAL_DATA = {"real_mnist", "real_fashion", "mnist_run"}


def pytest_configure(config):
    """The session's marker, in the environment of every process the tests start (xdist's
    workers, and through them every server, worker and CLI), before any is started."""
    if not hasattr(config, "workerinput"):  # the controlling process
        os.environ.setdefault(SESSION_ENV, uuid.uuid4().hex)


def pytest_sessionfinish(session, exitstatus):
    """Fail a session that leaves processes behind (every test reaps what it started,
    the flow runs its workers spawned included), and reap them."""
    if hasattr(session.config, "workerinput") or SESSION_ENV not in os.environ:
        return
    import time

    import psutil

    me = psutil.Process()
    # xdist's workers, ending now; never what they started
    spare = {me.pid, *(p.pid for p in me.children() if "sys.stdin.readline" in " ".join(p.cmdline()))}
    deadline = time.monotonic() + 15
    while (left := session_leftovers(os.environ[SESSION_ENV], spare)) and time.monotonic() < deadline:
        time.sleep(0.5)  # a server given SIGTERM a moment ago is still shutting down
    if left:
        for line in left:
            with contextlib.suppress(psutil.Error):
                psutil.Process(int(line.split(":", 1)[0])).kill()
        session.config.get_terminal_writer().line(
            f"\n{len(left)} process(es) outlived their test (killed now):\n  " + "\n  ".join(left), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items):
    """Each test marked with its folder's kind (``-m unit`` works too), and the folders'
    rules held: a test that starts a server or reads the real data is not a unit test,
    and one that reads the real data is an acceptance test."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind not in KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, tests/integration or tests/acceptance")
        fixtures = set(item.fixturenames)
        if kind == "unit" and fixtures & (PROCESS_FIXTURES | REAL_DATA):
            raise pytest.UsageError(f"{item.nodeid}: uses {sorted(fixtures & (PROCESS_FIXTURES | REAL_DATA))}; "
                                    "a unit test starts nothing and reads no real data")
        if kind != "acceptance" and fixtures & REAL_DATA:
            raise pytest.UsageError(f"{item.nodeid}: reads the real data; it belongs in tests/acceptance")
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> RunPaths:
    """A tiny model trained by every stage on a generated dataset, once per module: the
    service's and the load tests' model."""
    root = tmp_path_factory.mktemp("trained")
    checksums = write_dataset(root / "mirror")
    return run_stages(validate(tiny_params(root / "mirror", checksums)), root / "data", RunPaths(root / "run"))


@pytest.fixture(scope="module")
def other_trained(tmp_path_factory) -> RunPaths:
    """A second tiny model (another width and seed) that disagrees with ``trained`` now and then:
    the shadow's and the swaps' other model."""
    root = tmp_path_factory.mktemp("other")
    checksums = write_dataset(root / "mirror")
    params = tiny_params(root / "mirror", checksums, model={"hidden": [8]}, train={"seed": 7})
    return run_stages(validate(params), root / "data", RunPaths(root / "run"))


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A small generated MNIST-format dataset in a directory mirror, and its checksums."""
    directory = tmp_path / "mirror"
    return directory, write_dataset(directory)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder for one test's data/ and outputs/, handed to every step
    (nothing changes directory)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.delenv("MNISTFLOW_MIRROR", raising=False)
    return work


@pytest.fixture
def data_root(workdir: Path) -> Path:
    return workdir / "data"


@pytest.fixture
def paths(workdir: Path) -> RunPaths:
    return RunPaths(workdir / "outputs")


@pytest.fixture
def params(dataset):
    directory, checksums = dataset
    return validate(tiny_params(directory, checksums))


def _real_dataset(variable: str, name: str, required_in_ci: bool = True) -> Path:
    mirror = os.environ.get(variable, "")
    if not mirror or not (Path(mirror) / "train-images-idx3-ubyte.gz").exists():
        if os.environ.get("CI") and (required_in_ci or mirror):
            pytest.fail(f"CI must set {variable} to a directory holding the genuine {name}")
        pytest.skip(f"{name} not reachable: set {variable} to a directory with the four *-ubyte.gz files")
    return Path(mirror)


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST through the mirror setting, as an air-gapped user reaches it."""
    return _real_dataset("MNISTFLOW_MIRROR", "MNIST")


@pytest.fixture(scope="session")
def real_fashion() -> Path:
    """The genuine Fashion-MNIST, a mirror directory named by MNISTFLOW_FASHION_MIRROR
    (the tests hand it to the pipeline as MNISTFLOW_MIRROR). .ci/run sets it when
    ../shared holds it; set and unreachable fails in CI, as MNIST does."""
    return _real_dataset("MNISTFLOW_FASHION_MIRROR", "Fashion-MNIST", required_in_ci=False)


def run_stages(params, data_root: Path, paths: RunPaths) -> RunPaths:
    """Every DVC stage's function in turn, in this process: the pipeline without its CLIs."""
    from mnistflow.dvc_stages import DVC_STAGES, run_dvc_stage

    for stage in DVC_STAGES:
        run_dvc_stage(stage, params, data_root, paths)
    return paths


@pytest.fixture(scope="session")
def mnist_run(real_mnist, tmp_path_factory) -> RunPaths:
    """The default recipe (params.yaml) trained on the real MNIST, exported and carded."""
    import yaml

    from tests.helpers import REPO

    recipe = yaml.safe_load((REPO / "params.yaml").read_text())
    recipe["data"]["mirrors"] = [str(real_mnist)]
    work = tmp_path_factory.mktemp("mnist-run")
    return run_stages(validate(recipe), work / "data", RunPaths(work / "outputs"))


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect API server for the session; tests point PREFECT_API_URL at it."""
    from tests.helpers import PrefectServer

    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session (initdb, a free port, stopped after).
    A part that cannot start fails the tests that need it, saying why; nothing skips."""
    from harness.real_parts import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def files(params, data_root):
    """The generated dataset, downloaded and verified into ``data_root``."""
    from mnistflow.download import download

    return download(params.data, data_root)


@pytest.fixture
def champion(workdir) -> Path:
    """A champion's model file that is no model: what the run-folder guards must never touch."""
    model = workdir / "registry/champion/model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the champion's bytes")
    return model
