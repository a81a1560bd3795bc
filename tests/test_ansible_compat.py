"""Tests of ios_mp.ansible.compat: the pwd/grp stand-ins, and what they fix for ansible-core.

The stand-ins are tested without ansible. The ansible check (skipped when ansible-core
is not installed) runs ``python -m ios_mp --sandbox ios`` in a fresh interpreter, so
it is marked no_sandbox: importing ansible in-process would leave its global state
(patched stdout, collection finder) behind.
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

import ios_mp
from ios_mp import sandbox
from ios_mp.ansible import compat


@pytest.fixture
def stand_ins(monkeypatch):
    """Fresh stand-in modules, with a known environment."""
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("HOME", "/home/alice")
    monkeypatch.setenv("SHELL", "/bin/zsh")
    for name in ("LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    return compat._make_pwd(), compat._make_grp()


@pytest.fixture(autouse=True)
def installed():
    """Every test leaves the stand-ins out again (a later module, e.g. test_sandbox,
    checks that the sandbox has no grp)."""
    yield
    compat.uninstall()


def test_current_user_entry(stand_ins):
    pwd, grp = stand_ins
    entry = pwd.getpwuid(os.getuid())
    assert entry == ("alice", "*", os.getuid(), os.getgid(), "", "/home/alice", "/bin/zsh")
    assert (entry.pw_name, entry.pw_dir, entry.pw_shell) == ("alice", "/home/alice", "/bin/zsh")
    assert pwd.getpwnam("alice") == entry
    assert pwd.getpwall() == [entry]
    group = grp.getgrgid(os.getgid())
    assert group == ("alice", "*", os.getgid(), [])
    assert grp.getgrnam("alice") == group == grp.getgrgid(id=os.getgid())
    assert grp.getgrall() == [group]


def test_default_user_name_and_environment_order(stand_ins, monkeypatch):
    pwd, _ = stand_ins
    monkeypatch.setenv("LOGNAME", "first")
    assert pwd.getpwuid(os.getuid()).pw_name == "first"  # getpass.getuser()'s order
    for name in ("LOGNAME", "USER"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("HOME")
    entry = pwd.getpwuid(os.getuid())
    assert (entry.pw_name, entry.pw_dir) == (compat.DEFAULT_USER, "/") == ("mobile", "/")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda p, g: p.getpwuid(os.getuid() + 1),
            KeyError,
            f"getpwuid(): uid not found: {os.getuid() + 1}",
        ),
        (lambda p, g: p.getpwuid(-2), KeyError, "getpwuid(): uid not found"),
        (lambda p, g: p.getpwuid(2**32 - 1), KeyError, "getpwuid(): uid not found: -1"),
        (lambda p, g: p.getpwnam("nobody-x"), KeyError, "getpwnam(): name not found: 'nobody-x'"),
        (
            lambda p, g: g.getgrgid(os.getgid() + 1),
            KeyError,
            f"getgrgid(): gid not found: {os.getgid() + 1}",
        ),
        (lambda p, g: g.getgrnam("nobody-x"), KeyError, "getgrnam(): name not found: 'nobody-x'"),
        (lambda p, g: g.getgrgid(2**40), OverflowError, "gid is less than minimum"),
        (lambda p, g: g.getgrgid(2**63), OverflowError, "gid is greater than maximum"),
        (lambda p, g: p.getpwuid("0"), TypeError, "uid should be integer, not str"),
        (lambda p, g: g.getgrgid(1.0), TypeError, "gid should be integer, not float"),
        (lambda p, g: p.getpwnam(b"x"), TypeError, "getpwnam() argument must be str, not bytes"),
        (lambda p, g: g.getgrnam(1), TypeError, "must be str, not int"),
        (lambda p, g: p.getpwnam("a\0b"), ValueError, "embedded null byte"),
        (
            lambda p, g: p.getpwuid(),
            TypeError,
            "pwd.getpwuid() takes exactly one argument (0 given)",
        ),
        (lambda p, g: p.getpwnam(name="x"), TypeError, "pwd.getpwnam() takes no keyword arguments"),
        (lambda p, g: p.getpwall(1), TypeError, "pwd.getpwall() takes no arguments (1 given)"),
        (lambda p, g: g.getgrgid(), TypeError, "getgrgid() missing required argument 'id' (pos 1)"),
    ],
)
def test_errors_like_the_real_modules(stand_ins, call, error, message):
    with pytest.raises(error) as info:
        call(*stand_ins)
    assert info.value.args == (message,) or message in str(info.value)


def test_struct_sequences(stand_ins):
    pwd, grp = stand_ins
    entry = pwd.getpwuid(os.getuid())
    assert type(entry).__module__ == "pwd" and type(entry).__name__ == "struct_passwd"
    assert isinstance(entry, tuple) and len(entry) == entry.n_fields == 7
    assert (entry.n_sequence_fields, entry.n_unnamed_fields) == (7, 0)
    assert repr(entry).startswith("pwd.struct_passwd(pw_name='alice', pw_passwd='*', pw_uid=")
    with pytest.raises(AttributeError, match="readonly attribute"):
        entry.pw_name = "x"
    with pytest.raises(TypeError, match=r"takes a 7-sequence \(3-sequence given\)"):
        pwd.struct_passwd((1, 2, 3))
    with pytest.raises(TypeError, match="constructor requires a sequence"):
        pwd.struct_passwd(5)
    assert pwd.struct_passwd(range(7)).pw_shell == 6
    group = grp.getgrgid(os.getgid())
    assert (
        repr(group)
        == f"grp.struct_group(gr_name='alice', gr_passwd='*', gr_gid={os.getgid()}, gr_mem=[])"
    )
    if sys.version_info >= (3, 10):
        assert type(group).__match_args__ == ("gr_name", "gr_passwd", "gr_gid", "gr_mem")


@pytest.mark.no_sandbox
def test_same_shape_and_messages_as_the_real_modules(stand_ins):
    import grp as real_grp
    import pwd as real_pwd

    pwd, grp = stand_ins
    for real, fake, struct in ((real_pwd, pwd, "struct_passwd"), (real_grp, grp, "struct_group")):
        assert sorted(n for n in dir(fake) if not n.startswith("_")) == sorted(
            n for n in dir(real) if not n.startswith("_")
        )
        assert getattr(fake, struct).__doc__ == getattr(real, struct).__doc__
        assert getattr(fake, struct).n_fields == getattr(real, struct).n_fields
    unknown = 1234567
    for real, fake, function in (
        (real_pwd, pwd, "getpwuid"),
        (real_grp, grp, "getgrgid"),
        (real_pwd, pwd, "getpwnam"),
        (real_grp, grp, "getgrnam"),
    ):
        argument = unknown if function.endswith("id") else "ios-mp-no-such-name"
        with pytest.raises(KeyError) as expected:
            getattr(real, function)(argument)
        with pytest.raises(KeyError) as got:
            getattr(fake, function)(argument)
        assert got.value.args == expected.value.args


def test_pickles_through_the_installed_module(ios_sandbox, installed):
    assert compat.install() == ("pwd", "grp")
    import pwd

    entry = pwd.getpwuid(os.getuid())
    assert pickle.loads(pickle.dumps(entry)) == entry


def test_install_under_the_sandbox_and_uninstall(ios_sandbox, installed):
    assert sys.modules["pwd"] is None
    assert compat.install() == ("pwd", "grp")
    assert compat.install() == ("pwd", "grp")  # idempotent
    import grp
    import pwd

    assert pwd.__ios_mp_stand_in__ and grp.__ios_mp_stand_in__
    assert importlib.util.find_spec("pwd") is not None
    assert getpass.getuser() == "mobile"  # no user name in the sandbox's environment
    compat.uninstall()
    compat.uninstall()
    assert sys.modules["pwd"] is None and sys.modules["grp"] is None  # the sandbox's again
    assert compat.installed() == ()


@pytest.mark.no_sandbox
def test_never_shadows_the_real_modules(installed):
    import pwd

    assert compat.install() == ()
    assert sys.modules["pwd"] is pwd and not hasattr(pwd, "__ios_mp_stand_in__")


@pytest.mark.no_sandbox
def test_uninstall_after_the_sandbox_went_off_leaves_the_real_module(installed):
    with sandbox.sandboxed():
        compat.install()
    import pwd  # the sandbox put the real one back

    compat.uninstall()
    assert sys.modules["pwd"] is pwd and not hasattr(pwd, "__ios_mp_stand_in__")


# --- ansible-core -------------------------------------------------------------

ANSIBLE = importlib.util.find_spec("ansible") is not None
IMPORT_PLAYBOOK_CLI = textwrap.dedent(
    """
    import os, sys
    keep = os.environ.get("STAND_INS")
    if keep is not None:
        from ios_mp.ansible import compat
        compat.install()
        for name in ("pwd", "grp"):
            if name not in keep.split():
                sys.modules[name] = None  # this stand-in taken out again
    try:
        from ansible.cli.playbook import PlaybookCLI  # noqa: F401
    except BaseException as exc:  # ansible.cli exits 5 on an import error
        print("FAILED", type(exc).__name__, file=sys.__stderr__)
        sys.exit(3)
    print("IMPORTED", sys.modules["pwd"].__name__, file=sys.__stderr__)
    """
)


@pytest.mark.no_sandbox
@pytest.mark.skipif(not ANSIBLE, reason="ansible-core is not installed")
@pytest.mark.parametrize(
    "stand_ins", [None, "pwd", "grp", "pwd grp"], ids=["no-compat", "pwd-only", "grp-only", "both"]
)
def test_playbook_cli_imports_under_the_sandbox_only_with_both_stand_ins(tmp_path, stand_ins):
    """Each stand-in is needed: without pwd, ansible.utils.display's getpass.getuser()
    fails (USER/LOGNAME unset, as in an app); without grp, module_utils.basic does."""
    script = tmp_path / "import_cli.py"
    script.write_text(IMPORT_PLAYBOOK_CLI)
    env = {k: v for k, v in os.environ.items() if k not in sandbox.USER_VARIABLES}
    package_root = os.path.dirname(os.path.dirname(ios_mp.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    if stand_ins is not None:
        env["STAND_INS"] = stand_ins
    with_compat = stand_ins == "pwd grp"
    result = subprocess.run(
        [sys.executable, "-m", "ios_mp", "--sandbox", "ios", str(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=50,
    )
    if with_compat:
        assert result.returncode == 0, result.stderr
        assert "IMPORTED pwd" in result.stderr
    else:
        assert result.returncode == 3, result.stderr
        assert "FAILED" in result.stderr


# --- per-worker connection caches (hazard 10) ------------------------------------------


class _Client:
    def __init__(self, name):
        self.name = name
        self.closed = False

    def close(self):
        self.closed = True


def test_per_worker_cache_gives_each_worker_its_own_copy():
    import multiprocessing

    cache = compat.PerWorkerCache({"app": 1})
    left_open = _Client("left open")
    out = multiprocessing.Queue(copy=False)

    def body(i):
        empty_at_start = dict(cache)
        cache["127.0.0.1__u__"] = _Client(i)
        if i == 0:
            cache["other"] = left_open  # still in the cache when the worker exits
        out.put((i, empty_at_start, cache["127.0.0.1__u__"].name, len(cache)))
        if i != 0:
            cache.pop("127.0.0.1__u__").close()

    ps = [multiprocessing.Process(target=body, args=(i,)) for i in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(10)
    got = sorted(out.get(timeout=5) for _ in ps)
    assert got == [(0, {}, 0, 2), (1, {}, 1, 1), (2, {}, 2, 1)]
    assert dict(cache) == {"app": 1}  # the app's copy, untouched
    assert left_open.closed  # closed when its worker exited
    assert cache in {cache} and cache != compat.PerWorkerCache({"app": 1})  # by identity


def test_install_isolates_paramiko_caches_of_plugins_loaded_later(monkeypatch):
    import types

    loader_module = types.ModuleType("ansible.plugins.loader")

    class PluginLoader:
        def _load_module_source(self, *, python_module_name, path):
            m = types.ModuleType(python_module_name)
            m.SSH_CONNECTION_CACHE = {}
            m.SFTP_CONNECTION_CACHE = {}
            m.OTHER = {}
            return m

    loader_module.PluginLoader = PluginLoader
    monkeypatch.setitem(sys.modules, "ansible.plugins.loader", loader_module)
    compat.install()
    m = PluginLoader()._load_module_source(python_module_name="x.paramiko_ssh", path="p")
    assert isinstance(m.SSH_CONNECTION_CACHE, compat.PerWorkerCache)
    assert isinstance(m.SFTP_CONNECTION_CACHE, compat.PerWorkerCache)
    assert type(m.OTHER) is dict
    compat.install()  # idempotent: not wrapped twice
    assert not hasattr(PluginLoader._load_module_source.__wrapped__, "__wrapped__")


def test_display_final_q_is_per_worker():
    import multiprocessing
    import types

    display_module = types.ModuleType("ansible.utils.display")

    class Display:
        def __init__(self):
            self._final_q = None

        def set_queue(self, q):
            self._final_q = q

    display_module.Display = Display
    d = Display()
    compat._patch_display(display_module)
    compat._patch_display(display_module)  # idempotent
    assert isinstance(Display.__dict__["_final_q"], compat.PerWorkerAttribute)
    seen = multiprocessing.Queue(copy=False)

    def body(i):
        before = d._final_q
        d.set_queue(f"queue-{i}")
        seen.put((i, before, d._final_q))

    ps = [multiprocessing.Process(target=body, args=(i,)) for i in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(10)
    assert sorted(seen.get(timeout=5) for _ in ps) == [(i, None, f"queue-{i}") for i in range(3)]
    assert d._final_q is None  # the app's display still writes itself
    assert not any(k[1] != 0 for k in Display.__dict__["_final_q"]._values)  # forgotten at exit


def test_without_the_patch_a_workers_set_queue_switches_the_apps_display():
    """Why hazard 3's patch is needed: one Display singleton, one ``_final_q``."""
    import multiprocessing

    class Display:
        _final_q = None

        def set_queue(self, q):
            self._final_q = q

    d = Display()
    singleton = {"d": d}  # as ansible's Display() singleton, reached by the worker's code

    def worker():
        singleton["d"].set_queue("worker queue")

    p = multiprocessing.Process(target=worker)
    p.start()
    p.join(10)
    assert d._final_q == "worker queue"  # the app's output would now go to that queue


# --- one import of each plugin module at a time (hazard 15) ----------------------------


def _ansible_like_loader(source_of):
    """A PluginLoader whose _load_module_source is ansible 2.19's, run on a fake
    module source: ``source_of(name)`` is a function run as the module's code."""
    import types

    loader_module = types.ModuleType("ansible.plugins.loader")

    class PluginLoader:
        package = "ansible.plugins.filter"

        def _load_module_source(self, *, python_module_name, path):
            if python_module_name in sys.modules:
                return sys.modules[python_module_name]
            module = types.ModuleType(python_module_name)
            sys.modules[python_module_name] = module  # before its code runs, as ansible does
            try:
                source_of(python_module_name)(module)
            except Exception:
                del sys.modules[python_module_name]
                raise
            return module

    loader_module.PluginLoader = PluginLoader
    return loader_module, PluginLoader


@pytest.fixture
def plugin_modules():
    names = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def _run_workers(n, body):
    import multiprocessing

    out = multiprocessing.Queue(copy=False)

    def run(i):
        try:
            out.put((i, body(i)))
        except BaseException as e:
            out.put((i, repr(e)))

    ps = [multiprocessing.Process(target=run, args=(i,)) for i in range(n)]
    for p in ps:
        p.start()
    got = dict(out.get(timeout=20) for _ in ps)
    for p in ps:
        p.join(10)
        assert p.exitcode == 0
    return got


def test_workers_never_see_a_half_run_plugin_module(monkeypatch, plugin_modules):
    import time

    runs = []

    def core(module):
        runs.append(module.__name__)
        time.sleep(0.2)  # the other workers ask for it meanwhile
        module.FILTERS = {"b64decode": len}

    loader_module, PluginLoader = _ansible_like_loader(lambda name: core)
    monkeypatch.setitem(sys.modules, "ansible.plugins.loader", loader_module)
    compat.install()
    name = "ansible.plugins.filter.core_test_hazard15"
    plugin_modules.append(name)

    def body(i):
        m = PluginLoader()._load_module_source(python_module_name=name, path="core.py")
        return sorted(getattr(m, "FILTERS", {}))

    assert _run_workers(5, body) == {i: ["b64decode"] for i in range(5)}
    assert runs == [name]  # its code ran once


def test_without_the_patch_workers_see_a_half_run_plugin_module(plugin_modules):
    """Why hazard 15's patch is needed: ansible's own loader, unpatched."""
    import time

    def core(module):
        time.sleep(0.5)  # the other workers ask for it meanwhile
        module.FILTERS = {"b64decode": len}

    _, PluginLoader = _ansible_like_loader(lambda name: core)  # compat never sees it
    name = "ansible.plugins.filter.unpatched_test_hazard15"
    plugin_modules.append(name)

    def body(i):
        m = PluginLoader()._load_module_source(python_module_name=name, path="core.py")
        return sorted(getattr(m, "FILTERS", {}))

    got = _run_workers(5, body)
    assert [] in got.values()  # "No filter named 'b64decode'"
    assert ["b64decode"] in got.values()


def test_a_failed_plugin_load_is_retried_by_the_next_worker(monkeypatch, plugin_modules):
    import threading
    import time

    first = threading.Lock()

    def flaky(module):
        if first.acquire(blocking=False):
            time.sleep(0.2)
            raise RuntimeError("first load fails")
        module.OK = True

    loader_module, PluginLoader = _ansible_like_loader(lambda name: flaky)
    monkeypatch.setitem(sys.modules, "ansible.plugins.loader", loader_module)
    compat.install()
    name = "ansible.plugins.filter.flaky_test_hazard15"
    plugin_modules.append(name)

    def body(i):
        return PluginLoader()._load_module_source(python_module_name=name, path="f.py").OK

    got = _run_workers(3, body)
    assert sorted(map(str, got.values())) == ["RuntimeError('first load fails')", "True", "True"]


def test_plugin_modules_loading_each_other_do_not_deadlock(monkeypatch, plugin_modules):
    import threading

    both_started = threading.Barrier(2, timeout=10)
    x, y = "ansible.plugins.filter.x_test_hazard15", "ansible.plugins.filter.y_test_hazard15"
    plugin_modules.extend([x, y])
    loader = []

    def source_of(name):
        other = y if name == x else x

        def run(module):
            both_started.wait()  # x and y are both being loaded, by different workers
            module.OTHER = loader[0]._load_module_source(python_module_name=other, path="p")
            module.DONE = True

        return run

    loader_module, PluginLoader = _ansible_like_loader(source_of)
    monkeypatch.setitem(sys.modules, "ansible.plugins.loader", loader_module)
    compat.install()
    loader.append(PluginLoader())

    def body(i):
        m = loader[0]._load_module_source(python_module_name=(x, y)[i], path="p")
        return m.DONE

    # One of the two waits for the other's module; the other, whose wait would close
    # the cycle, takes the partly run module instead, as a circular import does.
    assert _run_workers(2, body) == {0: True, 1: True}


def test_plugin_module_name_of_older_loaders():
    class Loader:
        package = "ansible.plugins.action"

    name = compat._plugin_module_name
    assert name(Loader(), ("normal", "p"), {}) == "ansible.plugins.action.normal"
    assert name(Loader(), (), {"name": "ansible_collections.a.b.c"}) == "ansible_collections.a.b.c"
    assert name(Loader(), (), {"python_module_name": "m", "path": "p"}) == "m"
    assert name(Loader(), (), {}) is None


# --- per-worker worker.current_worker (hazard 11) --------------------------------------

_WORKER_SOURCE = """
import importlib
import multiprocessing

current_worker = None


class WorkerProcess(multiprocessing.Process):
    def __init__(self, worker_id, all_started, out):
        super().__init__()
        self.worker_id = worker_id
        self.all_started = all_started
        self.out = out

    def run(self):
        global current_worker
        current_worker = self  # as ansible's WorkerProcess.run does
        self.all_started.wait(10)
        # what Display.prompt_until does to find "its" worker:
        seen = importlib.import_module(__name__).current_worker
        self.out.put((self.worker_id, seen.worker_id))
"""


@pytest.mark.parametrize("patched", [True, False], ids=["with-patch", "without-patch"])
def test_current_worker_is_per_worker(monkeypatch, patched):
    import multiprocessing
    import types

    name = f"fake_ansible_worker_{patched}"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(_WORKER_SOURCE, name, "exec"), vars(module))
    if patched:
        compat._patch_worker(module)
        compat._patch_worker(module)  # idempotent
    all_started = multiprocessing.Barrier(3)
    out = multiprocessing.Queue(copy=False)
    ws = [module.WorkerProcess(i, all_started, out) for i in range(3)]
    for w in ws:
        w.start()
    got = sorted(out.get(timeout=10) for _ in ws)
    for w in ws:
        w.join(10)
    if patched:
        assert got == [(0, 0), (1, 1), (2, 2)]
        assert module.current_worker is not None  # the app reads the module's global
        assert module.current_worker.worker_id in (0, 1, 2)
    else:
        # The bug the patch is for: every worker sees the same (last started) one.
        assert len({seen for _, seen in got}) == 1


# --- where ansible writes, in an app container ---------------------------------------


def test_container_paths_on_ios_only_and_never_over_the_apps(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in compat.CONTAINER_PATHS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert compat._set_container_paths() == {}
    assert "ANSIBLE_HOME" not in os.environ
    monkeypatch.setattr(sys, "platform", "ios")
    assert compat._set_container_paths() == {
        "ANSIBLE_HOME": str(tmp_path / "Library" / "ansible"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(tempfile.gettempdir(), "ansible-local"),
    }
    assert os.environ["ANSIBLE_HOME"] == str(tmp_path / "Library" / "ansible")
    monkeypatch.setenv("ANSIBLE_HOME", "/app/chose/this")
    monkeypatch.delenv("ANSIBLE_LOCAL_TEMP")
    assert list(compat._set_container_paths()) == ["ANSIBLE_LOCAL_TEMP"]
    assert os.environ["ANSIBLE_HOME"] == "/app/chose/this"


@pytest.mark.no_sandbox
@pytest.mark.skipif(not ANSIBLE, reason="ansible-core is not installed")
def test_ansible_uses_the_container_paths_under_the_ios_platform(tmp_path):
    """Under the sandbox's sys.platform emulation, ansible's constants (read at its
    first import) name the container paths."""
    script = tmp_path / "paths.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from ios_mp import sandbox
            sandbox.enable("ios", platform=True)
            from ios_mp.ansible import compat
            compat.install()
            from ansible import constants as C
            print("HOME", C.config.get_config_value("ANSIBLE_HOME"))
            print("TMP", C.DEFAULT_LOCAL_TMP)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["HOME"] = str(tmp_path)
    env["USER"] = "mobile"
    package_root = os.path.dirname(os.path.dirname(ios_mp.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr
    assert f"HOME {tmp_path}/Library/ansible" in result.stdout, result.stdout
    assert "ansible-local" in result.stdout.split("TMP ", 1)[1], result.stdout


# --- TaskQueueManager.cleanup closes the connection lock file --------------------------


@pytest.mark.parametrize("patched", [True, False], ids=["with-patch", "without-patch"])
def test_task_queue_manager_cleanup_closes_its_lock_file(patched):
    import tempfile
    import types

    tqm_module = types.ModuleType("ansible.executor.task_queue_manager")

    class TaskQueueManager:  # the 2.16-2.20 shape
        def __init__(self):
            self._connection_lockfile = tempfile.TemporaryFile()  # noqa: SIM115  (as ansible)

        def cleanup(self):
            pass

    tqm_module.TaskQueueManager = TaskQueueManager
    if patched:
        compat._patch_task_queue_manager(tqm_module)
        compat._patch_task_queue_manager(tqm_module)  # idempotent
    tqm = TaskQueueManager()
    try:
        tqm.cleanup()
        assert tqm._connection_lockfile.closed is patched  # unpatched: left open
    finally:
        tqm._connection_lockfile.close()


def test_plugin_loaders_are_shared_with_workers_not_copied(monkeypatch):
    import multiprocessing
    import types

    from ios_mp import _snapshot

    loader_module = types.ModuleType("ansible.plugins.loader")

    class PluginLoader:
        def __init__(self):
            self._module_cache = {"warm": True}

        def _load_module_source(self, *, python_module_name, path):
            return types.ModuleType(python_module_name)

        def __getstate__(self):  # as ansible's: pickling gives a cold loader
            return {}

        def __setstate__(self, data):
            self.__init__()

    loader_module.PluginLoader = PluginLoader
    monkeypatch.setitem(sys.modules, "ansible.plugins.loader", loader_module)
    monkeypatch.setattr(_snapshot, "_SHARED", _snapshot._SHARED)  # share_type appends
    compat.install()
    loaders = types.SimpleNamespace(action_loader=PluginLoader())
    out = multiprocessing.Queue(copy=False)
    p = multiprocessing.Process(target=lambda ns: out.put(ns.action_loader), args=(loaders,))
    p.start()
    got = out.get(timeout=10)
    p.join(10)
    assert got is loaders.action_loader


@pytest.mark.parametrize("patched", [True, False], ids=["with-patch", "without-patch"])
def test_plays_are_shared_with_workers_tasks_and_blocks_copied(monkeypatch, patched):
    import multiprocessing
    import types

    from ios_mp import _snapshot

    play_module = types.ModuleType("ansible.playbook.play")

    class Play:
        def __init__(self):
            self.blocks = []

    class Block:
        def __init__(self, play):
            self._play = play
            self.become_user = "{{ user }}"

    class Task:
        def __init__(self, parent):
            self._parent = parent
            self.args = {"dest": "{{ inventory_hostname }}"}

    play_module.Play = Play
    monkeypatch.setitem(sys.modules, "ansible.playbook.play", play_module)
    monkeypatch.setattr(_snapshot, "_SHARED", _snapshot._SHARED)  # share_type appends
    if patched:
        compat.install()
    play = Play()
    block = Block(play)
    play.blocks.append(block)
    task = Task(block)
    out = multiprocessing.Queue(copy=False)

    def worker(task):
        task._parent.become_user = "h1"  # Task.post_validate templates its parents
        task.args["dest"] = "h1"
        out.put((task, task._parent, task._parent._play))

    p = multiprocessing.Process(target=worker, args=(task,))
    p.start()
    got_task, got_block, got_play = out.get(timeout=10)
    p.join(10)
    assert p.exitcode == 0
    assert got_task is not task and got_block is not block  # copied, as by fork
    assert (block.become_user, task.args["dest"]) == ("{{ user }}", "{{ inventory_hostname }}")
    assert (got_play is play) is patched  # without the patch the whole play is copied


def _fake_variable_manager_module():
    """A stand-in for ``ansible.vars.manager`` with the stores of 2.19's VariableManager:
    a memory cache plugin's ``_cache`` (facts), ``_nonpersistent_fact_cache`` (set_fact)
    and ``_vars_cache`` (include_vars), and its mutators."""
    import collections
    import types

    module = types.ModuleType("ansible.vars.manager")

    class CacheModule:  # ansible.plugins.cache.memory
        def __init__(self):
            self._cache = {}

        def get(self, key):
            return self._cache[key]

        def set(self, key, value):
            self._cache[key] = value

    class VariableManager:
        def __init__(self):
            self._fact_cache = CacheModule()
            self._nonpersistent_fact_cache = collections.defaultdict(dict)
            self._vars_cache = collections.defaultdict(dict)

        def set_host_facts(self, host, facts):  # as 2.19: updates the host's dict in place
            try:
                host_cache = self._fact_cache.get(host)
            except KeyError:
                host_cache = facts
            else:
                host_cache |= facts
            self._fact_cache.set(host, host_cache)

        def set_nonpersistent_facts(self, host, facts):
            self._nonpersistent_fact_cache[host] |= facts

    module.VariableManager = VariableManager
    return module


@pytest.mark.timeout(60)
@pytest.mark.parametrize("patched", [True, False], ids=["with-patch", "without-patch"])
def test_variable_manager_is_fork_like_for_workers(monkeypatch, patched):
    """A worker sees the VariableManager as it was at its start (as after fork): not the
    controller's later writes (facts updated in place), and its own writes stay its own.
    With the patch, workers started while the stores are unchanged get one copy of each
    host's dict (no copy per start), and a write by the controller starts a new one."""
    import multiprocessing
    import threading

    from ios_mp import _snapshot

    module = _fake_variable_manager_module()
    monkeypatch.setitem(sys.modules, "ansible.vars.manager", module)
    monkeypatch.setattr(_snapshot, "_copy_hooks", {})
    monkeypatch.setattr(_snapshot, "_kinds", {})
    if patched:
        compat.install()
    vm = module.VariableManager()
    vm.set_host_facts("h1", {"os": "Debian", "nested": {"n": 1}})
    vm.set_host_facts("h2", {"os": "Alpine"})
    vm.set_nonpersistent_facts("h1", {"run_id": "a"})
    out = multiprocessing.Queue(copy=False)
    go = threading.Event()

    def worker(vm, wait):
        mine = vm._fact_cache._cache["h1"]
        if wait:
            go.wait(10)  # the controller writes meanwhile
        seen = (mine["os"], mine["nested"]["n"], vm._nonpersistent_fact_cache["h1"]["run_id"])
        vm._nonpersistent_fact_cache["h9"]["from_worker"] = True
        out.put((seen, mine, vm))

    def run(wait=False):
        p = multiprocessing.Process(target=worker, args=(vm, wait))
        p.start()
        return p

    p1 = run(wait=True)
    p2 = run()  # same generation as p1
    seen2, h1_2, vm2 = out.get(timeout=10)
    p2.join(10)
    vm.set_host_facts("h1", {"os": "Ubuntu", "nested": {"n": 2}})  # in place, as 2.19
    vm.set_nonpersistent_facts("h1", {"run_id": "b"})
    go.set()
    seen1, h1_1, vm1 = out.get(timeout=10)
    p1.join(10)
    p3 = run()  # after the controller's writes
    seen3, h1_3, vm3 = out.get(timeout=10)
    p3.join(10)
    assert [p.exitcode for p in (p1, p2, p3)] == [0, 0, 0]
    assert seen1 == seen2 == ("Debian", 1, "a")  # not the controller's later writes
    assert seen3 == ("Ubuntu", 2, "b")  # a start after them sees them
    assert "h9" not in vm._nonpersistent_fact_cache  # the workers' writes stay theirs
    assert len({id(v) for v in (vm, vm1, vm2, vm3)}) == 4  # the manager: one per worker
    assert len({id(v._nonpersistent_fact_cache) for v in (vm1, vm2, vm3)}) == 3
    assert h1_1 is not vm._fact_cache._cache["h1"]
    assert (h1_1 is h1_2) is patched  # one copy per generation with the patch
    assert h1_3 is not h1_1
