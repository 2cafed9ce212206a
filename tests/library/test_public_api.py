"""The declared public API: every name in ``__all__`` imports, and the package itself imports
neither Django's settings nor gevent (a settings module may import it)."""
import subprocess
import sys

import ws4redis_server


def test_every_public_name_resolves() -> None:
    for name in ws4redis_server.__all__:
        assert getattr(ws4redis_server, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    try:
        ws4redis_server.connection_internals  # noqa: B018
    except AttributeError as exc:
        assert "connection_internals" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_package_loads_neither_django_settings_nor_gevent() -> None:
    code = ("import sys, ws4redis_server; "
            "print(sorted(m for m in ('gevent', 'django.conf', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"


def test_the_js_client_is_where_js_client_says() -> None:
    from django.contrib.staticfiles import finders

    assert finders.find(ws4redis_server.JS_CLIENT)
