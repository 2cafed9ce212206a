"""``runserver`` that also serves WebSockets: pages, static files and WEBSOCKET_URL on one port.

It needs gevent's monkey patching before Django, redis-py or socket are imported. A process
started without it (a plain ``manage.py`` or ``django-admin``) re-executes itself through
:mod:`ws4redis_server.bootstrap`, which patches first and then runs the same program with the
same arguments (same PID). With the autoreloader, only the child that serves is re-executed:
the watching parent never opens a socket.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management.base import CommandError
from django.utils import autoreload
from gevent import monkey

from ...bootstrap import GUARD


def is_patched() -> bool:
    return monkey.is_module_patched("socket")


def patched_command_line() -> list[str]:
    """This process's command line, run through the bootstrap module (as Django's autoreloader
    builds its child's: interpreter options, then ``-m package`` or the script)."""
    import __main__

    args = [sys.executable, *(f"-W{option}" for option in sys.warnoptions)]
    args += [f"-X{key}" if value is True else f"-X{key}={value}" for key, value in sys._xoptions.items()]
    args += ["-m", "ws4redis_server.bootstrap"]
    spec = getattr(__main__, "__spec__", None)
    if spec is not None:
        runs_package = spec.name == "__main__" or spec.name.endswith(".__main__")
        name = spec.parent if runs_package and spec.parent else spec.name
        return [*args, "-m", name, *sys.argv[1:]]
    if not Path(sys.argv[0]).exists():
        raise CommandError(f"runserver cannot re-execute {sys.argv[0]!r} with gevent's monkey patching: apply "
                           "gevent.monkey.patch_all() at the top of manage.py instead")
    return [*args, *sys.argv]


def reexecute_patched() -> None:
    """Replaces this process by the same program started through the bootstrap module."""
    args = patched_command_line()
    env = dict(os.environ)
    env[GUARD] = str(os.getpid())
    # ``python -m`` puts the working directory first on sys.path where a script had its own
    # directory: keep this package importable if it was found only there.
    package_parent = str(Path(__file__).resolve().parents[3])
    if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == package_parent != os.getcwd():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)


class Command(StaticRunserver):
    help = "Starts a development server for pages, static files and WebSockets (gevent + wsproto)."

    from_command_line = False

    def run_from_argv(self, argv: list[str]) -> None:
        self.from_command_line = True
        super().run_from_argv(argv)

    def run(self, **options: Any) -> None:
        if not is_patched() and self.serves_in_this_process(options):
            if not self.from_command_line:
                raise CommandError("runserver with WebSockets needs gevent's monkey patching in this process: "
                                   "start it from the command line (manage.py or django-admin)")
            if os.environ.get(GUARD) == str(os.getpid()):
                raise CommandError("runserver was re-executed through ws4redis_server.bootstrap and is "
                                   "still not patched by gevent")
            reexecute_patched()
        super().run(**options)

    @staticmethod
    def serves_in_this_process(options: dict[str, Any]) -> bool:
        """False for the autoreloader's parent: it only starts and watches the serving child."""
        return not options["use_reloader"] or os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"

    def inner_run(self, *args: Any, **options: Any) -> None:
        # Imported here: the autoreloader's parent never serves and needs none of this.
        import gevent

        from ...conf import get_settings
        from ...devserver import dev_server

        autoreload.raise_last_exception()
        if not is_patched():
            raise CommandError("runserver with WebSockets needs gevent's monkey patching")
        self.stdout.write("Performing system checks...\n\n")
        self.check(display_num_errors=True)
        self.check_migrations()
        address = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(
            f"Development server (gevent) at http://{address}:{self.port}/, "
            f"WebSockets under {get_settings().websocket_url}\nQuit with CONTROL-C.\n"
        )
        sys.stdout.flush()
        # Ctrl-C is a way to stop, not an error: gevent's hub would print it before raising it.
        hub = gevent.get_hub()
        hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
        server = dev_server((self.addr, int(self.port)), self.get_handler(*args, **options))
        try:
            server.init_socket()
        except OSError as exc:
            self.stderr.write(f"Error: {exc.strerror or exc}")
            os._exit(1)  # as Django's runserver: also from the autoreloader's thread
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.stop(timeout=1)
