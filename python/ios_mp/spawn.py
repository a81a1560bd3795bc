"""``multiprocessing.spawn``: importable for libraries that probe it; ios_mp never
creates processes, so what it would start raises on use."""

from ._unimplemented import class_, function

__all__: list = []

WINEXE = False
WINSERVICE = False


def get_executable():
    import sys

    return sys.executable


def set_executable(exe) -> None:
    pass


def is_forking(argv) -> bool:
    return False


def freeze_support() -> None:
    pass


get_command_line = function("multiprocessing.spawn.get_command_line()")
spawn_main = function("multiprocessing.spawn.spawn_main()")
get_preparation_data = function("multiprocessing.spawn.get_preparation_data()")
prepare = function("multiprocessing.spawn.prepare()")
_ = class_
