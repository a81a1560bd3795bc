"""Entry point of ``python -m ios_mp``.

usage: python -m ios_mp [--sandbox ios] [--no-install]
       (script | -m module | console-script) [args...]

See ``ios_mp._runner`` for what it does, and for why the sandbox is enabled
after, not before, the interpreter has imported the ``ios_mp`` package.
"""

import sys

from ._runner import main

__all__ = []

if __name__ == "__main__":
    sys.exit(main())
