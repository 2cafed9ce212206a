#!/usr/bin/env python
"""Django's command-line utility for the demo site."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    if len(sys.argv) > 1 and sys.argv[1] == "runserver":
        # The development server serves pages and /ws/ on one port with gevent;
        # patching must happen before Django, redis-py or socket are imported.
        from gevent import monkey

        monkey.patch_all()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
