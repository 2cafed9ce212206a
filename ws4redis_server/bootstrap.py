"""Runs a program with gevent's monkey patching applied before anything else is imported.

    python -m ws4redis_server.bootstrap manage.py runserver ...
    python -m ws4redis_server.bootstrap -m django runserver ...

The library's ``runserver`` re-executes its own process through this module when the process is
not patched (a plain ``manage.py`` or ``django-admin``), so projects need no change of their own.
The program then runs as if started directly: as ``__main__``, with its own ``sys.argv`` and, for
a script, its directory first on ``sys.path``.
"""
from __future__ import annotations

import os
import sys

#: Set to the PID of a process re-executed through this module: if that process is still not
#: patched, runserver stops with an error instead of re-executing again.
GUARD = "WS4REDIS_GEVENT_BOOTSTRAP"

USAGE = "usage: python -m ws4redis_server.bootstrap (SCRIPT | -m MODULE) [ARGS...]"


def main() -> None:
    from gevent import monkey

    monkey.patch_all()

    import runpy

    args = sys.argv[1:]
    if not args or (args[0] == "-m" and len(args) < 2):
        sys.exit(USAGE)
    if args[0] == "-m":
        # sys.path[0] is the working directory, as for ``python -m`` itself.
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
