"""The app's logic, without Toga: what one playbook run needs, for a background thread.

Importable (and testable) without Toga installed; ``app.py`` is the Toga view on top.
``import ios_mp`` comes first, before anything imports ``ansible`` or
``multiprocessing``: it installs ios_mp as ``multiprocessing`` (iOS and Android have no
``_multiprocessing``/``sem_open``), and ansible binds ``multiprocessing`` at import.
"""

from __future__ import annotations

import ios_mp  # first: ios_mp becomes multiprocessing before ansible loads

# isort: split
import os
import threading
from pathlib import Path
from typing import Callable, Mapping

import ios_mp.ansible

__all__ = [
    "APP_ENV",
    "RECAP_HEADINGS",
    "PlaybookRun",
    "default_inventory",
    "default_playbook",
    "recap_rows",
    "summary",
]

#: Columns of the recap table: the host, then ansible's PLAY RECAP counters.
RECAP_HEADINGS = ("host", *ios_mp.ansible.RECAP_FIELDS)

#: ``ANSIBLE_*`` settings for every run of this app (the run's ``env=``).
APP_ENV = {
    "ANSIBLE_NOCOLOR": "1",  # a text view shows no ANSI colours
    "ANSIBLE_RETRY_FILES_ENABLED": "False",  # no .retry file next to the playbook
    # paramiko would write the host keys it saw to ~/.ssh/known_hosts at the end of a
    # run; the root of an iOS app's data container ($HOME) is not writable
    "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
}


def default_inventory() -> str:
    """The inventory of the loopback demo target (``python -m ios_mp.ansible.demo start``
    writes it): ``$IOS_MP_DEMO_DIR/inventory.ini``, else ``/tmp/iosmp-demo/inventory.ini``."""
    from ios_mp.ansible import demo

    directory = os.environ.get("IOS_MP_DEMO_DIR") or demo.DEFAULT_DIR
    return os.path.join(directory, "inventory.ini")


def default_playbook() -> str:
    """``examples/ansible/site.yml`` of the ios_mp repository this example sits in."""
    return str(Path(__file__).resolve().parents[3] / "ansible" / "site.yml")


def recap_rows(recap: Mapping[str, Mapping[str, int]]) -> list[tuple[str | int, ...]]:
    """One row per host, sorted by host name: ``(host, ok, changed, ...)``."""
    return [
        (host, *(int(recap[host].get(f, 0)) for f in ios_mp.ansible.RECAP_FIELDS))
        for host in sorted(recap)
    ]


def summary(result: ios_mp.ansible.PlaybookResult) -> str:
    """A one-line status for a finished run."""
    if result.rc == 0:
        what = "ok"
    elif result.rc == 99:
        what = "cancelled"
    elif result.rc == 2:
        what = "a host failed"
    elif result.rc == 4:
        what = "a host was unreachable"
    else:
        what = "error"
    return f"{what} (rc {result.rc}, {len(result.recap)} hosts, {result.seconds:.1f} s)"


class PlaybookRun:
    """One run of ``playbook`` against ``inventory``.

    ``run()`` blocks until ansible ends: call it on a background thread (the Toga view
    uses ``loop.run_in_executor``). ``on_output`` is called with the run's output as it
    is written, from the run's threads. ``cancel()`` may be called from any thread (the
    UI's Cancel button): the run is interrupted as by Ctrl-C and ends with rc 99.
    """

    def __init__(
        self,
        playbook: str | os.PathLike[str],
        inventory: str | os.PathLike[str],
        *,
        forks: int = 5,
        env: Mapping[str, str] | None = None,
        on_output: Callable[[str], object] | None = None,
    ) -> None:
        self.playbook = self._existing_file("playbook", playbook)
        self.inventory = self._existing_file("inventory", inventory)
        if not isinstance(forks, int) or forks < 1:
            raise ValueError(f"forks must be a positive int, got {forks!r}")
        self.forks = forks
        self.env = dict(APP_ENV, **(env or {}))
        self.on_output = on_output
        self.cancel_event = threading.Event()
        self.result: ios_mp.ansible.PlaybookResult | None = None

    @staticmethod
    def _existing_file(what: str, path: str | os.PathLike[str]) -> str:
        text = os.fspath(path).strip() if isinstance(path, (str, os.PathLike)) else None
        if not text:
            raise ValueError(f"{what} must be a file path, got {path!r}")
        if not os.path.isfile(text):
            raise ValueError(f"{what} {text!r} is not a file")
        return text

    def run(self) -> ios_mp.ansible.PlaybookResult:
        """Run the playbook (blocking) and return its ``PlaybookResult``."""
        self.result = ios_mp.ansible.run_playbook(
            self.playbook,
            self.inventory,
            forks=self.forks,
            env=self.env,
            on_output=self.on_output,
            cancel=self.cancel_event,
        )
        return self.result

    def cancel(self) -> None:
        """Interrupt the run (any thread; a no-op once it has ended)."""
        self.cancel_event.set()
