"""ansible callback plugin ``ios_mp_recap``: the play recap as structured data.

Not a stdout callback and needs no enabling: ``ios_mp.ansible.run_playbook`` adds this
directory to ansible's callback loader, and a stock ``ansible-playbook`` loads it when
``ANSIBLE_CALLBACK_PLUGINS`` names this directory. At ``v2_playbook_on_stats`` it hands
``{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}}`` to
``ios_mp.ansible`` when that module is already imported (in-process runs) and writes it
as JSON ``{recap, problems}`` to ``$IOS_MP_ANSIBLE_RECAP_FILE`` when that is set
(subprocess runs). It never
imports ``ios_mp`` itself, so a stock fork run stays a stock fork run.
"""

from __future__ import annotations

import json
import os
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: ios_mp_recap
    type: aggregate
    short_description: the play recap as structured data for ios_mp.ansible
    description: Hands the per-host stats to ios_mp.ansible.run_playbook.
"""

_FIELDS = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("unreachable", "unreachable"),
    ("failed", "failures"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ios_mp_recap"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._problems = []

    def _note(self, kind, result):
        msg = result._result.get("msg") or result._result.get("stderr") or ""
        self._problems.append(
            f"{kind} {result._host.get_name()} [{result._task.get_name()}]: {msg}"
        )

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._note("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result):
        self._note("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        recap = {}
        for host in sorted(stats.processed):
            s = stats.summarize(host)
            recap[host] = {ours: int(s.get(theirs, 0)) for ours, theirs in _FIELDS}
        api = sys.modules.get("ios_mp.ansible")
        sink = getattr(api, "_recap_sink", None)
        if sink is not None:
            sink(recap, list(self._problems))
        path = os.environ.get("IOS_MP_ANSIBLE_RECAP_FILE")
        if path:
            with open(path, "w") as f:
                json.dump({"recap": recap, "problems": self._problems}, f, sort_keys=True)
