"""Packaging of the library alone: django-ws4redis-server, imported as ``ws4redis_server``.

It asks for ranges; requirements/lowest.txt holds the lowest version of each range (the nox
session "lowest" tests them, tests/library/test_packaging.py checks the two agree). The demo site
(webapp, workers, deploy, bench, tests) is not packaged: it pins exact versions in
requirements/site.txt and installs this library from the checkout (``pip install -e .``).
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# The version without importing the package (and so Django).
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "ws4redis_server" / "__init__.py").read_text("utf-8"),
                    re.MULTILINE).group(1)

INSTALL_REQUIRES = [
    "Django>=5.2,<6.2",
    # hub.py subclasses redis-py's PubSub: _reconnect(conn, error, ...) is called with the error
    # from 7.2 on (the hub marks the connection failed there instead of letting redis-py reopen it);
    # 7.2.0 fails a script's first run over a unix socket (NoScriptError's handler reads .port).
    "redis>=7.2.1,<9",
    "gevent>=23.7",  # 23.7: entry points through importlib.metadata (22.10 needs pkg_resources)
    "greenlet>=2.0.1",
    "wsproto>=1.0,<2",
    # protocol.py unmasks frames with websockets' C speedups; the test helpers' clients use
    # connect(..., legacy=True), new in 17.1.
    "websockets>=17.1,<18",
]

EXTRAS_REQUIRE = {
    "uwsgi": ["uWSGI>=2.0.22,<2.1"],
    "prometheus": ["prometheus_client>=0.12"],
    "hiredis": ["hiredis>=3.2"],
    "test": ["websockets>=17.1,<18"],
}

setup(
    name="django-ws4redis-server",
    version=VERSION,
    description="WebSockets for classic Django sites: a gevent uWSGI sidecar joined to Django by Redis pub/sub.",
    long_description=(HERE / "README.md").read_text("utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=find_packages(include=["ws4redis_server", "ws4redis_server.*"]),
    include_package_data=False,
    package_data={
        "ws4redis_server": ["static/ws4redis/*", "static/ws4redis/**/*", "templates/ws4redis/*",
                            "templates/ws4redis/**/*", "py.typed", "locale/*/LC_MESSAGES/*"],
    },
    zip_safe=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Intended Audience :: Developers",
        "Operating System :: POSIX",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
