"""The private names mnistflow leans on still exist, and each shortcut's off switch works.

A failure here means a library changed under a measured shortcut: turn it off
with MNISTFLOW_NO_PRIVATE_API=<name> (mnistflow/private_api.py) until it is mended.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_private_api.py.
"""

import atexit
import importlib
import inspect

import pytest

from mnistflow import private_api


def test_fast_exit_names_exist():
    assert callable(getattr(atexit, "_run_exitfuncs", None)), "atexit._run_exitfuncs is gone: turn off fast-exit"


@pytest.mark.parametrize("module", private_api.EXPORTER_MODULES)
def test_every_exporter_module_still_imports(module):
    importlib.import_module(module)  # a rename inside torch or onnxscript fails here: turn off exporter-preload


def test_dvc_lock_names_exist_with_the_signature_used():
    from dvc.repo import lock_repo
    from dvc.rwlock import rwlock

    assert callable(lock_repo)
    assert list(inspect.signature(rwlock).parameters)[:6] == ["tmp_dir", "fs", "cmd", "read", "write", "hardlink"]


def test_the_h11_protocol_internals_the_header_deadline_uses_exist():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    for name in ("connection_made", "data_received", "on_response_complete", "connection_lost"):
        assert callable(getattr(H11Protocol, name, None)), f"H11Protocol.{name} is gone: turn off header-deadline"
    source = inspect.getsource(H11Protocol)
    for attribute in ("self.cycle", "self.transport", "self.loop"):
        assert attribute in source, f"H11Protocol no longer has {attribute}: turn off header-deadline"


def test_switches_read_the_environment():
    assert all(private_api.enabled(name, env={}) for name in private_api.NAMES)
    off = {private_api.SWITCH_ENV: "dvc-locks, exporter-preload"}
    assert [private_api.enabled(n, env=off) for n in private_api.NAMES] == [True, False, False, True]
    assert not any(private_api.enabled(n, env={private_api.SWITCH_ENV: "all"}) for n in private_api.NAMES)
    with pytest.raises(KeyError):
        private_api.enabled("no-such-shortcut")


def test_the_dvc_lock_switched_off_holds_nothing(monkeypatch):
    monkeypatch.setenv(private_api.SWITCH_ENV, "dvc-locks")
    from lifecycle.workspace import dvc_path_lock

    with dvc_path_lock(repo=None, writes=["x"]) as held:  # never touches the repo
        assert held is False
