"""The Briefcase example app (examples/briefcase/): its logic and its Toga view with
Toga's dummy backend (``TOGA_BACKEND=toga_dummy``), under the faithful iOS sandbox (the
suite's default), against the suite's loopback sshd (tests/ansible/conftest.py).

The logic module (``iosmp_playbooks.runner``) imports without Toga; the view tests skip
when toga-core/toga-dummy are missing, all of them when ansible-core or paramiko is.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ansible")
pytest.importorskip("paramiko")

from tests.ansible.conftest import (  # noqa: F401  (fixture)
    sshd_fixture,
    take_compat_out,
    write_inventory,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "briefcase"
PB = Path(__file__).resolve().parent / "ansible"
sys.path.insert(0, str(EXAMPLE / "src"))

from iosmp_playbooks import runner  # noqa: E402

# The suite's settings for its throwaway sshd (as tests/test_ansible_e2e.py).
ENV = {
    "ANSIBLE_PARAMIKO_LOOK_FOR_KEYS": "False",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
}


@pytest.fixture(scope="module", autouse=True)
def _compat_taken_out_afterwards():
    """compat out again after this module's runs (see take_compat_out)."""
    yield
    take_compat_out()


@pytest.fixture(scope="module")
def inventory(sshd, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("briefcase-example") / "inventory.ini"
    return write_inventory(path, 3, connection="paramiko_ssh", sshd=sshd, workdir=sshd.workdir)


# -- the logic, without Toga ---------------------------------------------------------


def test_logic_imports_without_toga_and_ios_mp_first():
    for name in ("runner.py", "app.py", "__main__.py"):
        src = (EXAMPLE / "src" / "iosmp_playbooks" / name).read_text()
        imports = [
            line.split("  #")[0]
            for line in src.splitlines()
            if line.startswith(("import ", "from ")) and "__future__" not in line
        ]
        assert imports[0] == "import ios_mp", (name, imports)
    assert "toga" not in (EXAMPLE / "src" / "iosmp_playbooks" / "runner.py").read_text()
    assert "toga" not in sys.modules or "iosmp_playbooks.app" in sys.modules


def test_defaults_point_at_the_demo_target_and_the_demo_playbook(monkeypatch):
    monkeypatch.delenv("IOS_MP_DEMO_DIR", raising=False)
    assert runner.default_inventory() == "/tmp/iosmp-demo/inventory.ini"
    monkeypatch.setenv("IOS_MP_DEMO_DIR", "/x/demo")
    assert runner.default_inventory() == "/x/demo/inventory.ini"
    assert Path(runner.default_playbook()) == ROOT / "examples" / "ansible" / "site.yml"
    assert Path(runner.default_playbook()).is_file()


def test_recap_rows_and_bad_input(tmp_path):
    recap = {"h02": {"ok": 3, "failed": 1}, "h01": dict.fromkeys(runner.RECAP_HEADINGS[1:], 2)}
    assert runner.recap_rows(recap) == [
        ("h01", 2, 2, 2, 2, 2, 2, 2),
        ("h02", 3, 0, 0, 1, 0, 0, 0),
    ]
    pb = runner.default_playbook()
    with pytest.raises(ValueError, match="inventory must be a file path, got '  '"):
        runner.PlaybookRun(pb, "  ")
    with pytest.raises(ValueError, match=r"playbook '/nonexistent.yml' is not a file"):
        runner.PlaybookRun("/nonexistent.yml", pb)
    with pytest.raises(ValueError, match="forks must be a positive int, got 0"):
        runner.PlaybookRun(pb, pb, forks=0)


@pytest.mark.timeout(300)
def test_logic_run_on_a_background_thread_streams_output(inventory):
    chunks: list[tuple[bool, str]] = []
    run = runner.PlaybookRun(
        runner.default_playbook(),
        inventory,
        forks=3,
        env=ENV,
        # True: the text came while run() had not returned yet
        on_output=lambda text: chunks.append((run.result is None, text)),
    )
    t = threading.Thread(target=run.run, name="app-background-run")
    t.start()
    t.join(240)
    assert not t.is_alive()
    res = run.result
    assert res is not None and res.rc == 0, res and res.stdout[-3000:]
    assert [r[0] for r in runner.recap_rows(res.recap)] == ["h01", "h02", "h03"]
    assert all(r[4] == 0 and r[1] >= 6 for r in runner.recap_rows(res.recap))
    text = "".join(c for _, c in chunks)
    assert all(during for during, _ in chunks)
    assert "TASK [render a template per host]" in text and "PLAY RECAP" in text
    assert runner.summary(res).startswith("ok (rc 0, 3 hosts, ")


# -- the Toga view, with the dummy backend -------------------------------------------


@pytest.fixture
def app(monkeypatch):
    pytest.importorskip("toga")
    pytest.importorskip("toga_dummy")
    monkeypatch.setenv("TOGA_BACKEND", "toga_dummy")
    from iosmp_playbooks.app import main

    app = main()
    try:
        yield app
    finally:
        if app.current is not None:  # a failed test must not leave a run going
            app.current.cancel()
        loop = app.loop
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


async def _until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_view_defaults(app, monkeypatch):
    assert app.inventory_input.value == runner.default_inventory()
    assert app.playbook_input.value == runner.default_playbook()
    assert [c.heading for c in app.recap_table.columns] == list(runner.RECAP_HEADINGS)
    assert (app.run_button.enabled, app.cancel_button.enabled) == (True, False)


def test_view_reports_bad_input_without_running(app):
    app.inventory_input.value = "/nonexistent/inventory.ini"

    async def scenario():
        app.run_button._impl.simulate_press()
        await asyncio.sleep(0.1)

    app.loop.run_until_complete(scenario())
    assert app.status.text == "inventory '/nonexistent/inventory.ini' is not a file"
    assert not app.running and app.run_button.enabled


@pytest.mark.timeout(300)
def test_view_run_streams_output_while_running_and_shows_the_recap(app, inventory, monkeypatch):
    monkeypatch.setattr(runner, "APP_ENV", dict(runner.APP_ENV, **ENV))
    app.inventory_input.value = str(inventory)
    ui_thread = threading.get_ident()
    seen_while_running: list[str] = []
    appended_on: set[int] = set()
    orig_append = app.append_output

    def append_output(text: str) -> None:
        appended_on.add(threading.get_ident())
        orig_append(text)

    app.append_output = append_output

    async def scenario():
        app.run_button._impl.simulate_press()
        assert await _until(lambda: app.running, 5)
        assert (app.run_button.enabled, app.cancel_button.enabled) == (False, True)
        assert app.status.text == "Running..."
        # the UI loop keeps running (it is not blocked) and output arrives during the run
        assert await _until(lambda: "TASK [a directory per host]" in app.output.value, 120)
        seen_while_running.append(app.output.value)
        assert app.running
        assert await _until(lambda: not app.running, 240)

    app.loop.run_until_complete(scenario())
    assert "PLAY RECAP" not in seen_while_running[0]
    assert "PLAY RECAP" in app.output.value
    assert appended_on == {ui_thread}  # results handed back to the UI thread
    assert app.status.text.startswith("ok (rc 0, 3 hosts"), app.output.value[-3000:]
    rows = [(r.host, r.ok, r.changed, r.unreachable, r.failed) for r in app.recap_table.data]
    assert [r[0] for r in rows] == ["h01", "h02", "h03"]
    assert all(r[1] >= 6 and r[3] == 0 and r[4] == 0 for r in rows), rows
    assert (app.run_button.enabled, app.cancel_button.enabled) == (True, False)


@pytest.mark.timeout(300)
def test_view_cancel_stops_a_long_run_with_rc_99(app, inventory, monkeypatch):
    monkeypatch.setattr(runner, "APP_ENV", dict(runner.APP_ENV, **ENV))
    app.inventory_input.value = str(inventory)
    app.playbook_input.value = str(PB / "pb_long.yml")
    runs: list[runner.PlaybookRun] = []

    async def scenario():
        app.run_button._impl.simulate_press()
        assert await _until(lambda: app.running, 5)
        runs.append(app.current)
        assert await _until(lambda: "TASK [sleeps for a long time]" in app.output.value, 120)
        await asyncio.sleep(2.0)  # the hosts are in their 60 s remote command now
        assert app.running
        app.cancel_button._impl.simulate_press()
        assert app.status.text == "Cancelling..."
        assert await _until(lambda: not app.running, 60)

    app.loop.run_until_complete(scenario())
    res = runs[0].result
    # rc 99 is ansible's "interrupted": the 60 s command did not run to its end (rc 0)
    assert res is not None and res.rc == 99, (res and res.rc, app.output.value[-3000:])
    assert app.status.text.startswith("cancelled (rc 99")
    assert (app.run_button.enabled, app.cancel_button.enabled) == (True, False)
    from ios_mp.process import _by_vpid

    deadline = time.monotonic() + 10
    while any(p.is_alive() for p in list(_by_vpid.values())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in list(_by_vpid.values()) if p.is_alive()]


# -- briefcase dev on Linux (toga-gtk under Xvfb) ------------------------------------


@pytest.mark.no_sandbox
@pytest.mark.timeout(600)
def test_briefcase_dev_runs_the_app_on_linux(tmp_path):
    """examples/briefcase/screenshot.sh: `briefcase dev` starts the app (toga-gtk, in
    Xvfb), which runs site.yml against the demo target and shows the result; the
    screenshot is saved. Needs briefcase and toga-gtk in this interpreter's venv, Xvfb,
    and root + /usr/sbin/sshd for the demo target (see examples/briefcase/README.md)."""
    import importlib.util
    import shutil
    import subprocess

    missing = [m for m in ("briefcase", "toga_gtk") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)} (examples/briefcase/README.md)")
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb missing (apt-get install xvfb)")
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("the demo target needs root and /usr/sbin/sshd")
    out = tmp_path / "shot.png"
    proc = subprocess.run(
        [str(EXAMPLE / "screenshot.sh"), sys.prefix, str(out)],
        capture_output=True,
        text=True,
        timeout=540,
        env=dict(os.environ, SCREENSHOT_DISPLAY="96"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ios_mp Playbooks: ok (rc 0, 3 hosts" in proc.stdout, proc.stdout[-3000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
