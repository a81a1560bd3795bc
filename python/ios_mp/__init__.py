"""ios_mp: a thread-backed drop-in for ``multiprocessing``, for iOS and Android apps.

``import ios_mp`` (before anything imports ``multiprocessing``) installs ios_mp as
``sys.modules["multiprocessing"]`` and as every submodule, so unmodified
programs run with each "process" as a thread of the app. This module has the
same top-level names as ``multiprocessing`` (bound to the default context), plus
``install()``, ``uninstall()`` and ``is_installed()``.
"""

from __future__ import annotations

import sys

from . import context
from ._install import IosMpImportOrderWarning, install, is_installed, uninstall

__version__ = "0.1.0"

__all__ = [x for x in dir(context._default_context) if not x.startswith("_")]
globals().update((name, getattr(context._default_context, name)) for name in __all__)
__all__ += ["IosMpImportOrderWarning", "install", "is_installed", "uninstall"]

SUBDEBUG = 5
SUBWARNING = 25

if "__main__" in sys.modules:
    sys.modules.setdefault("__mp_main__", sys.modules["__main__"])

install()
