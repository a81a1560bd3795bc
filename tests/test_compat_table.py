"""docs/compatibility.md must say what the installed package really provides."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import ios_mp

DOC = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"
ROW = re.compile(r"^\| `(multiprocessing(?:\.\w+)+)` \| (yes|partial|not yet) \|")


def rows() -> dict[str, str]:
    found = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(dotted)


ROWS = rows()


def test_table_is_not_empty():
    assert len(ROWS) > 40


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_status_matches_the_package(name):
    obj = resolve(name)
    placeholder = getattr(obj, "__ios_mp_unimplemented__", None)
    if ROWS[name] == "not yet":
        if placeholder is None:
            # a factory method of the context: calling it must hit a placeholder
            with pytest.raises(NotImplementedError):
                obj(*([1] * _arity(name)))
    else:
        assert placeholder is None, f"{name} is documented as {ROWS[name]} but is a placeholder"


def _arity(name: str) -> int:
    return {"Value": 2, "Array": 2, "RawValue": 2, "RawArray": 2}.get(name.rsplit(".", 1)[-1], 0)


def test_every_top_level_name_has_a_row():
    public = [
        n
        for n in ios_mp.__all__
        if n not in ("install", "uninstall", "is_installed", "IosMpImportOrderWarning")
    ]
    missing = [n for n in public if f"multiprocessing.{n}" not in ROWS]
    assert not missing, f"add rows to docs/compatibility.md for {missing}"
