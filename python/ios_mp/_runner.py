"""``python -m ios_mp``: run a Python program with ios_mp as ``multiprocessing``.

usage: python -m ios_mp [--sandbox ios [--stdin MODE] [--stdio MODE] [--user NAME]
       [--platform]] [--no-install] (script | -m module | console-script) [args...]

Only ios_mp's own options are parsed, up to the program: the program's name and
every argument after it are passed on untouched, and ``--`` also ends ios_mp's
options. Then, in this order:

1. ``--sandbox ios`` enables ``ios_mp.sandbox``, the faithful iOS sandbox: no
   processes, none of the modules CPython's iOS build lacks (``pwd``, ``grp``,
   ``_posixsubprocess``, ``readline``, ...), no ``USER``/``LOGNAME`` in the
   environment, and descriptor 0 on ``/dev/null`` (no usable stdin). Its options
   (only with ``--sandbox``): ``--stdin devnull|none|keep`` (default
   ``devnull``; ``none`` makes ``sys.stdin`` ``None``), ``--stdio keep|log``
   (default ``keep``; ``log`` makes ``sys.stdout``/``sys.stderr`` descriptor-less
   streams writing one message per line, to descriptors 1 and 2, as iOS sends
   them to the system log), ``--user NAME`` (``USER``/``LOGNAME`` set to NAME
   instead of unset; an app's environment may have ``mobile``) and
   ``--platform`` (``sys.platform == "ios"``, ``platform.system() == "iOS"``;
   off by default, see ``ios_mp.sandbox``);
2. ``ios_mp.install()`` installs ios_mp as ``multiprocessing``; with
   ``--no-install`` it is uninstalled again (importing ios_mp installs it), so
   the program gets the stdlib ``multiprocessing``. For one of ansible-core's
   programs (``ansible-playbook``, ``-m ansible...``, a script ``ansible*``),
   ``ios_mp.ansible.compat.install()`` runs too;
3. the program runs the way the interpreter would run it:

   * ``script`` (an existing file, directory or zip file):
     ``runpy.run_path(script, run_name="__main__")``, with
     ``sys.argv = [script, *args]`` and ``sys.path[0]`` set to the script's
     directory;
   * ``-m module``: ``runpy.run_module(module, run_name="__main__",
     alter_sys=True)``, with ``sys.argv = [<module file>, *args]``;
   * ``console-script`` (a name that is not a file): the installed
     ``console_scripts`` entry point of that name, called as
     ``sys.exit(entry_point.load()())`` with ``sys.argv = [name, *args]``; failing
     that, a Python script of that name on ``PATH``, run as a script.

``main()`` returns the exit status: 0 when the program ends normally, the code
of a ``SystemExit`` it raises (printing a non-integer code to stderr and
returning 1, as the interpreter does), and 2 with a usage message for a bad
command line. Other exceptions from the program propagate.

Order of imports: ``python -m ios_mp`` makes the interpreter import the package
``ios_mp`` (its ``__init__``) before this code runs, so the sandbox is enabled
*after* that import, not before. This is still correct for the program being
run: ios_mp imports none of the modules iOS lacks and never uses ``os.fork`` or
``subprocess`` (``tests/test_sandbox.py`` imports every ios_mp module in a fresh
sandboxed interpreter to check), and the sandbox is on before ``install()`` and
before the program's first line.

Like the interpreter, ``main()`` leaves ``sys.argv``, ``sys.path`` and the sandbox
as the program left them (the program's atexit handlers and threads may still
run after it returns); callers that run it in-process restore them.
"""

from __future__ import annotations

import importlib
import os
import runpy
import shutil
import sys
from dataclasses import dataclass, field

from . import sandbox

__all__ = ["main"]

PROG = "python -m ios_mp"
USAGE = (
    f"usage: {PROG} [--sandbox ios [--stdin MODE] [--stdio MODE] [--user NAME] [--platform]]"
    " [--no-install] (script | -m module | console-script) [args...]"
)
HELP = f"""{USAGE}

Run a Python program as the interpreter would, with ios_mp installed as
multiprocessing.

program (it and all arguments after it are passed to the program):
  script          a Python file, or a directory or zip file with a __main__.py
  -m module       a module, run as by python -m
  console-script  an installed console script, or a Python script on PATH

options:
  -h, --help      show this help message and exit
  --sandbox ios   first make this interpreter behave like CPython in an iOS app
                  (ios_mp.sandbox): no processes, none of the modules iOS lacks
                  (pwd, grp, _posixsubprocess, readline, ...), no USER/LOGNAME,
                  no usable stdin
  --stdin MODE    with --sandbox: devnull (default: descriptor 0 on /dev/null),
                  none (sys.stdin is None) or keep
  --stdio MODE    with --sandbox: keep (default) or log (sys.stdout/stderr have
                  no file descriptor and write one message per line, to fds 1/2)
  --user NAME     with --sandbox: set USER and LOGNAME to NAME instead of unset
  --platform      with --sandbox: also make sys.platform "ios" and
                  platform.system() "iOS"
  --no-install    do not install ios_mp as multiprocessing
  --              end of ios_mp options: the next argument is the program
"""


class _UsageError(Exception):
    pass


class _HelpRequested(Exception):
    pass


# The sandbox options of the command line: option -> (enable() keyword, allowed values).
_SANDBOX_OPTIONS = {
    "--stdin": ("stdin", sandbox.STDIN_MODES),
    "--stdio": ("stdio", sandbox.STDIO_MODES),
    "--user": ("user", None),
}


@dataclass
class _Command:
    sandbox: str | None = None  # the sandbox kind to enable, if any
    # enable()'s keyword arguments; the runner's default stdin is "no usable stdin".
    sandbox_options: dict[str, object] = field(default_factory=lambda: {"stdin": "devnull"})
    sandbox_flags: list[str] = field(default_factory=list)  # sandbox options given
    install: bool = True
    module: bool = False  # True: `program` is a module name given with -m
    program: str = ""
    args: list[str] = field(default_factory=list)


def _value(argv: list[str], i: int, option: str) -> tuple[str, int]:
    """The value of *option* at ``argv[i]`` (``--opt value`` or ``--opt=value``), next index."""
    arg = argv[i]
    if arg == option:
        if i + 1 == len(argv):
            raise _UsageError(f"argument {option}: expected one argument")
        return argv[i + 1], i + 1
    return arg.partition("=")[2], i


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        choices = ", ".join(repr(k) for k in allowed)
        raise _UsageError(f"argument {option}: invalid choice: {value!r} (choose from {choices})")
    return value


def _is_option(arg: str, option: str) -> bool:
    return arg == option or arg.startswith(option + "=")


def _parse(argv: list[str]) -> _Command:
    command = _Command()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            raise _HelpRequested
        if arg == "--no-install":
            command.install = False
        elif _is_option(arg, "--sandbox"):
            kind, i = _value(argv, i, "--sandbox")
            command.sandbox = _choice("--sandbox", kind, sandbox.KINDS)
        elif arg == "--platform":
            command.sandbox_options["platform"] = True
            command.sandbox_flags.append(arg)
        elif any(_is_option(arg, o) for o in _SANDBOX_OPTIONS):
            option = arg.partition("=")[0]
            keyword, allowed = _SANDBOX_OPTIONS[option]
            value, i = _value(argv, i, option)
            if allowed is not None:
                _choice(option, value, allowed)
            elif not value:
                raise _UsageError(f"argument {option}: expected a non-empty value")
            command.sandbox_options[keyword] = value
            command.sandbox_flags.append(option)
        elif arg.startswith("-m"):
            # "-m module", or "-mmodule" as the interpreter also accepts.
            module = arg[2:]
            if not module:
                if i + 1 == len(argv):
                    raise _UsageError("argument -m: expected one argument")
                i += 1
                module = argv[i]
            command.module, command.program, command.args = True, module, argv[i + 1 :]
            return _checked(command)
        elif arg.startswith("-") and arg != "-":
            raise _UsageError(f"unrecognized arguments: {arg}")
        else:
            break
        i += 1
    if i == len(argv):
        raise _UsageError(
            "the following arguments are required: script | -m module | console-script"
        )
    command.program, command.args = argv[i], argv[i + 1 :]
    return _checked(command)


def _checked(command: _Command) -> _Command:
    if command.sandbox is None and command.sandbox_flags:
        raise _UsageError(f"argument {command.sandbox_flags[0]}: only allowed with --sandbox")
    return command


def _exit_status(exc: SystemExit) -> int:
    # What the interpreter does with an uncaught SystemExit.
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _console_script(name: str) -> object | None:
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        found = entry_points(group="console_scripts")
    else:  # 3.9: a dict of group name -> entry points
        found = entry_points().get("console_scripts", ())
    for entry_point in found:
        if entry_point.name == name:
            return entry_point
    return None


def _raised_by_runpy(exc: BaseException) -> bool:
    # runpy raises ImportError itself when it cannot find the module to run.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == "runpy"


def _is_binary(path: str) -> bool:
    with open(path, "rb") as f:
        return b"\0" in f.read(1024)


def _run_script(path: str, args: list[str]) -> int:
    sys.argv = [path, *args]
    if not getattr(sys.flags, "safe_path", False):  # python -P adds no script directory
        # The interpreter puts the script's directory (symlinks resolved), or the
        # directory or zip file itself, in place of the current directory.
        entry = os.path.dirname(os.path.realpath(path)) if os.path.isfile(path) else path
        if sys.path:
            sys.path[0] = entry
        else:
            sys.path.insert(0, entry)
    runpy.run_path(path, run_name="__main__")
    return 0


def _run(command: _Command) -> int:
    name, args = command.program, command.args
    if command.module:
        sys.argv = ["-m", *args]  # run_module puts the module's file in sys.argv[0]
        try:
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        except ImportError as exc:
            if not _raised_by_runpy(exc):
                raise  # an ImportError of the module's own code
            print(f"{PROG}: {exc}", file=sys.stderr)  # no such module: the interpreter exits 1
            return 1
        return 0
    if os.path.exists(name) or os.sep in name or (os.altsep and os.altsep in name):
        if not os.path.exists(name):
            path = os.path.abspath(name)
            print(f"{PROG}: can't open file {path!r}: No such file or directory", file=sys.stderr)
            return 2
        return _run_script(name, args)
    entry_point = _console_script(name)
    if entry_point is not None:
        sys.argv = [name, *args]
        sys.exit(entry_point.load()())
    path = shutil.which(name)
    if path is None:
        print(
            f"{PROG}: can't find {name!r}: not a file, a console script or a program on PATH",
            file=sys.stderr,
        )
        return 2
    if _is_binary(path):
        print(f"{PROG}: {path!r} is not a Python script", file=sys.stderr)
        return 2
    return _run_script(path, args)


def _is_ansible(command: _Command) -> bool:
    """Whether the program is one of ansible-core's (``ansible-playbook``,
    ``-m ansible``, a script named ``ansible*``)."""
    return os.path.basename(command.program).split(".")[0].startswith("ansible")


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m ios_mp`` with *argv* (default ``sys.argv[1:]``); return the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        command = _parse(list(argv))
    except _HelpRequested:
        sys.stdout.write(HELP)
        return 0
    except _UsageError as exc:
        sys.stderr.write(f"{USAGE}\n{PROG}: error: {exc}\n")
        return 2

    if command.sandbox is not None:
        # Before ios_mp's multiprocessing layer; a sandbox already on stays as it is.
        sandbox.enable(command.sandbox, **command.sandbox_options)  # type: ignore[arg-type]
    package = importlib.import_module(__package__ or "ios_mp")
    # Importing the package installs it; --no-install takes that back, so the
    # program sees the stdlib multiprocessing (useful to compare behaviours).
    if command.install:
        package.install()
        if _is_ansible(command):
            # ansible-core's controller needs ios_mp.ansible.compat on iOS.
            from .ansible import compat

            compat.install()
    else:
        package.uninstall()
    try:
        return _run(command)
    except SystemExit as exc:
        return _exit_status(exc)
