"""python/ios_mp/_core.pyi must describe the native module as built: the same
functions, classes and class members (a name-level check; mypy's stubtest, with
signatures, comes with the typed-API work)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import ios_mp._core as core

STUB = Path(__file__).resolve().parent.parent / "python" / "ios_mp" / "_core.pyi"
# Attributes every extension class/module has that a stub does not list.
IGNORED = {
    "__doc__",
    "__module__",
    "__new__",
    "__init__",
    "__dict__",
    "__weakref__",
    "__reduce__",
    "__copy__",
    "__deepcopy__",
    "__repr__",
    "__traverse__",
    "__clear__",
    "__enter__",
    "__exit__",
    "__loader__",
    "__spec__",
    "__package__",
    "__name__",
    "__file__",
    "__all__",
    "__builtins__",
    "__cached__",
}


def stub_names() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    top: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            members[node.name] = names - IGNORED
    return top, members


def own_members(cls: type) -> set[str]:
    return {n for n in vars(cls) if n not in IGNORED}


def test_stub_lists_every_module_level_name():
    top, _ = stub_names()
    actual = {n for n in vars(core) if n not in IGNORED and not n.startswith("__")}
    assert actual - top == set(), "missing from _core.pyi"
    assert top - actual == set(), "in _core.pyi but not in the module"


def test_stub_lists_every_class_member():
    _, members = stub_names()
    for name, obj in vars(core).items():
        if inspect.isclass(obj) and obj.__module__.startswith("ios_mp") and name in members:
            if issubclass(obj, BaseException):
                continue
            actual = own_members(obj)
            assert actual - members[name] == set(), f"{name}: missing from _core.pyi"
            assert members[name] - actual == set(), f"{name}: in _core.pyi only"
