"""The upstream dispatcher of ``tests/scanner_app.py`` written with ``match``
(Python 3.10+; ``scanner_app`` uses its if/elif twin on 3.9). Kept apart so the
3.9 interpreter never has to parse it."""

from __future__ import annotations


def dispatch(app, state, msg) -> None:
    """Route one upstream message to ``state`` (see ``scanner_app.dispatch_if``)."""
    match msg:
        case app.Ready(worker=w):
            state.ready.add(w)
        case app.Result(job=job, value=value):
            state.results[job] = value
        case app.SemRequest(name=name, limit=limit):
            state.create_semaphore(name, limit)
        case app.Done(worker=w, handled=n):
            state.done[w] = n
        case app.ScanError(job=job, reason=reason):
            state.errors[job] = reason
        case BaseException():
            state.crashes.append(f"{type(msg).__name__}: {msg}")
        case None:
            state.sentinels += 1
        case _:
            raise TypeError(f"upstream: unexpected message {msg!r}")
