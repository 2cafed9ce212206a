"""Packaging for django-ws4redis-c10k: the ws4redis_server sidecar, the demo site and its workers.

Every third-party version the project runs with is pinned here and only here.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "Django>=5.2,<5.3",
    "uWSGI==2.0.31",
    "gevent==26.9.0",
    "greenlet==3.5.6",
    "redis[hiredis]==8.1.0",
    "wsproto==1.3.2",
    "websockets==17.4",
    "dj-database-url==3.1.2",
    "psycopg[binary]==3.3.9",
    "prometheus_client==0.26.0",
    "tqdm==4.70.1",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "playwright==1.65.2",
        "hypothesis==6.170.15",
        "numpy==2.4.6",
        "coverage==7.17.3",
        "ruff==0.17.5",
        "mypy==2.4.1",
    ],
    "bench": [
        "matplotlib==3.11.2",
        "numpy==2.4.6",
        "channels==4.3.2",
        "channels-redis==4.3.0",
        "daphne==4.2.3",
    ],
}

setup(
    name="django-ws4redis-c10k",
    version="0.1.0",
    description="Real-time WebSockets for classic Django sites: a gevent uWSGI sidecar joined by Redis pub/sub.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=find_packages(include=["ws4redis_server*", "webapp*", "workers*"]),
    include_package_data=True,
    package_data={
        "ws4redis_server": ["static/ws4redis/*.js"],
        "webapp": ["templates/**/*", "static/**/*", "*/templates/**/*", "*/static/**/*", "*/patterns/*"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    classifiers=[
        "Framework :: Django :: 5.2",
        "Programming Language :: Python :: 3.11",
    ],
)
