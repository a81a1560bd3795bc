from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import ios_mp
from ios_mp import _install


def test_every_submodule_is_ios_mp():
    import multiprocessing

    assert multiprocessing is ios_mp
    for sub in _install.SUBMODULES:
        mod = importlib.import_module("multiprocessing." + sub)
        assert mod is importlib.import_module("ios_mp." + sub), sub
    import multiprocessing.dummy.connection as dc

    assert dc is sys.modules["ios_mp.dummy.connection"]


def test_other_ios_mp_modules_import_by_their_multiprocessing_name_as_themselves():
    # CPython's _TestImportStar imports every *.py of the package directory as
    # multiprocessing.<name>: that must be the ios_mp module, not a second copy.
    import ios_mp._virtual

    assert "multiprocessing._virtual" not in _install.SUBMODULES
    try:
        assert importlib.import_module("multiprocessing._virtual") is ios_mp._virtual
        assert importlib.import_module("multiprocessing.popen_spawn_win32").__all__ == []
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("multiprocessing.no_such_module")
    finally:  # other tests compare sys.modules before and after
        sys.modules.pop("multiprocessing._virtual", None)
        sys.modules.pop("multiprocessing.popen_spawn_win32", None)


def test_aliases_go_with_uninstall():
    importlib.import_module("multiprocessing._unimplemented")
    _install.uninstall()
    try:
        assert "multiprocessing._unimplemented" not in sys.modules
        assert not any(isinstance(f, _install._Alias) for f in sys.meta_path)
    finally:
        _install.install()
    assert (
        importlib.import_module("multiprocessing._unimplemented")
        is sys.modules["ios_mp._unimplemented"]
    )
    del sys.modules["multiprocessing._unimplemented"]


def test_private_c_modules_left_alone():
    # The iOS sandbox makes these unimportable; ios_mp must not need or provide them.
    for name in ("_multiprocessing", "_posixshmem"):
        with pytest.raises(ImportError):
            importlib.import_module(name)


def test_top_level_names_match_stdlib_context_api():
    names = {
        "Process",
        "Queue",
        "SimpleQueue",
        "JoinableQueue",
        "Lock",
        "RLock",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "Event",
        "Barrier",
        "Pipe",
        "Pool",
        "Manager",
        "Value",
        "Array",
        "RawValue",
        "RawArray",
        "current_process",
        "parent_process",
        "active_children",
        "cpu_count",
        "freeze_support",
        "get_context",
        "get_start_method",
        "set_start_method",
        "get_all_start_methods",
        "get_logger",
        "log_to_stderr",
        "set_executable",
        "set_forkserver_preload",
        "allow_connection_pickling",
        "reducer",
        "ProcessError",
        "BufferTooShort",
        "TimeoutError",
        "AuthenticationError",
    }
    missing = names - set(dir(ios_mp))
    assert not missing


def test_uninstall_restores_and_install_is_idempotent():
    before = {k: v for k, v in sys.modules.items() if k.startswith("multiprocessing")}
    ios_mp.install()  # idempotent
    assert sys.modules["multiprocessing"] is ios_mp
    ios_mp.uninstall()
    try:
        assert not ios_mp.is_installed()
        assert "multiprocessing" not in sys.modules or sys.modules["multiprocessing"] is not ios_mp
        for k in before:
            assert sys.modules.get(k) is not before[k]
    finally:
        ios_mp.install()
    assert {k: v for k, v in sys.modules.items() if k.startswith("multiprocessing")} == before


def test_warns_when_stdlib_multiprocessing_was_imported_first():
    ios_mp.uninstall()
    try:
        import multiprocessing as stdlib_mp  # the real stdlib package

        assert stdlib_mp is not ios_mp
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ios_mp.install()
        assert any(issubclass(x.category, ios_mp.IosMpImportOrderWarning) for x in w)
        import multiprocessing

        assert multiprocessing is ios_mp
        ios_mp.uninstall()
        assert sys.modules["multiprocessing"] is stdlib_mp
    finally:
        ios_mp.uninstall()
        for k in [k for k in sys.modules if k.startswith("multiprocessing")]:
            del sys.modules[k]
        ios_mp.install()


@pytest.mark.parametrize(
    "module,attr",
    [
        ("popen_fork", "Popen"),
        ("forkserver", "ensure_running"),
    ],
)
def test_unimplemented_parts_import_and_name_the_feature_on_use(module, attr):
    mod = importlib.import_module("multiprocessing." + module)
    with pytest.raises(NotImplementedError, match=f"multiprocessing.{module}.{attr}"):
        getattr(mod, attr)()


def test_contexts():
    import multiprocessing

    for method in (None, "fork", "spawn", "forkserver"):
        ctx = multiprocessing.get_context(method)
        assert ctx.Queue() is not None and ctx.Lock() is not None
    assert multiprocessing.get_context("fork").Process.__name__ == "ForkProcess"
    assert multiprocessing.get_all_start_methods() == ["fork", "spawn", "forkserver"]
    with pytest.raises(ValueError, match="cannot find context for 'bogus'"):
        multiprocessing.get_context("bogus")
    assert multiprocessing.get_start_method() == "fork"
    with pytest.raises(RuntimeError, match="context has already been set"):
        multiprocessing.set_start_method("spawn")
    multiprocessing.set_start_method("spawn", force=True)
    try:
        assert multiprocessing.get_start_method() == "spawn"
    finally:
        multiprocessing.set_start_method("fork", force=True)
    assert multiprocessing.cpu_count() >= 1
    multiprocessing.freeze_support()
    assert issubclass(multiprocessing.TimeoutError, multiprocessing.ProcessError)


def test_dummy_still_works():
    import multiprocessing.dummy as dummy

    out = []
    p = dummy.Process(target=out.append, args=(1,))
    p.start()
    p.join()
    assert out == [1] and p.exitcode == 0
    a, b = dummy.Pipe()
    a.send("x")
    assert b.recv() == "x"
