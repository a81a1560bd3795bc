"""The Toga view: inventory and playbook fields, Run and Cancel, live output, recap table.

The UI thread only ever touches widgets. A run goes to a background thread with
``loop.run_in_executor``; its output comes back through ``loop.call_soon_threadsafe``
and its result through the ``await`` (which resumes on the UI thread).
"""

from __future__ import annotations

import ios_mp  # noqa: F401  (first, before anything imports ansible or multiprocessing)

# isort: split
import asyncio
import sys
import threading

import toga
from toga.style import Pack

from .runner import (
    RECAP_HEADINGS,
    PlaybookRun,
    default_inventory,
    default_playbook,
    recap_rows,
    summary,
)

FORMAL_NAME = "ios_mp Playbooks"
APP_ID = "org.example.iosmp-playbooks"


class PlaybookApp(toga.App):
    def startup(self) -> None:
        self.current: PlaybookRun | None = None
        self._pending: list[str] = []  # output of the run not yet shown
        self._pending_lock = threading.Lock()
        self.inventory_input = toga.TextInput(value=default_inventory(), style=Pack(flex=1))
        self.playbook_input = toga.TextInput(value=default_playbook(), style=Pack(flex=1))
        self.run_button = toga.Button("Run", on_press=self.on_run, style=Pack(margin=4))
        self.cancel_button = toga.Button(
            "Cancel", on_press=self.on_cancel, enabled=False, style=Pack(margin=4)
        )
        self.status = toga.Label("Ready", style=Pack(margin=4, flex=1))
        self.output = toga.MultilineTextInput(readonly=True, style=Pack(flex=2))
        self.recap_table: toga.Table[tuple[str | int, ...]] = toga.Table(
            list(RECAP_HEADINGS), data=[], style=Pack(flex=1)
        )

        def row(label: str, widget: toga.Widget) -> toga.Box:
            return toga.Box(
                children=[toga.Label(label, style=Pack(width=90, margin=4)), widget],
                style=Pack(direction="row"),
            )

        # A local: toga types App.main_window as Window | str | None.
        window = toga.MainWindow(title=self.formal_name, size=(900, 700))
        window.content = toga.Box(
            children=[
                row("Inventory", self.inventory_input),
                row("Playbook", self.playbook_input),
                toga.Box(
                    children=[self.run_button, self.cancel_button, self.status],
                    style=Pack(direction="row"),
                ),
                self.output,
                self.recap_table,
            ],
            style=Pack(direction="column", margin=6),
        )
        self.main_window = window
        window.show()
        # --run: start a run at once (examples/briefcase/screenshot.sh)
        self.autorun: asyncio.Task[None] | None = None
        if "--run" in sys.argv[1:]:
            self.autorun = asyncio.ensure_future(self.on_run(self.run_button))

    # -- called on the UI thread -----------------------------------------------------

    @property
    def running(self) -> bool:
        return self.current is not None

    def output_from_run(self, loop: asyncio.AbstractEventLoop, text: str) -> None:
        """Called from the run's threads: queue the text for the UI thread and return.
        One hand-over per batch (a text view re-lays out on every change)."""
        with self._pending_lock:
            self._pending.append(text)
            if len(self._pending) > 1:
                return  # a flush is already on its way
        loop.call_soon_threadsafe(self._flush_output)

    def _flush_output(self) -> None:
        with self._pending_lock:
            text = "".join(self._pending)
            self._pending.clear()
        if text:
            self.append_output(text)

    def append_output(self, text: str) -> None:
        self.output.value = self.output.value + text
        self.output.scroll_to_bottom()

    async def on_run(self, widget: toga.Widget) -> None:
        if self.current is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            run = PlaybookRun(
                self.playbook_input.value,
                self.inventory_input.value,
                on_output=lambda text: self.output_from_run(loop, text),
            )
        except ValueError as exc:
            self.status.text = str(exc)
            return
        self.current = run
        self.output.value = ""
        self.recap_table.data = []
        self.status.text = "Running..."
        self.run_button.enabled, self.cancel_button.enabled = False, True
        try:
            result = await loop.run_in_executor(None, run.run)  # never on the UI thread
        except Exception as exc:  # the run itself failed (ansible missing, ...)
            self.status.text = f"failed: {exc!r}"
        else:
            self.recap_table.data = recap_rows(result.recap)
            self.status.text = summary(result)
        finally:
            self.current = None
            self.run_button.enabled, self.cancel_button.enabled = True, False
            print(f"{self.formal_name}: {self.status.text}", flush=True)  # the app's log

    def on_cancel(self, widget: toga.Widget) -> None:
        if self.current is not None:
            self.status.text = "Cancelling..."
            self.current.cancel()

    def on_exit(self) -> bool:
        if self.current is not None:
            self.current.cancel()  # the run ends (rc 99) instead of outliving the window
        return True


def main() -> PlaybookApp:
    return PlaybookApp(FORMAL_NAME, APP_ID)
