"""The library's tests on its built wheel: every supported Python x Django ("library"), and every
dependency at the lowest version setup.py allows ("lowest", requirements/lowest.txt).

    make matrix                     # all sessions (the Makefile puts the interpreters on PATH)
    make matrix NOX_ARGS="-s lowest"

The wheel is built once per run into a temporary directory. The tests run with the ``pytest``
executable from the repository's root, so the checkout is not on sys.path: what they import is
the installed wheel (tests/library/test_packaging.py checks it when WS4R_EXPECT_INSTALLED=1).
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
MATRIX = [("3.11", "5.2"), ("3.12", "5.2"), ("3.12", "6.0"), ("3.12", "6.1"),
          ("3.13", "5.2"), ("3.13", "6.0"), ("3.13", "6.1")]
TEST_TOOLS = ("pytest", "pytest-timeout", "hypothesis")  # pinned in requirements/test.txt
LIBRARY_TESTS = ("-c", "tests/library/pytest.ini", "tests/library")

nox.options.sessions = ["library", "lowest"]
nox.options.error_on_missing_interpreters = True
try:
    nox.options.download_python = "never"
except AttributeError:  # older nox
    pass

# pyenv's interpreters, when the python3.X they hold is not on PATH already.
for version in sorted({python for python, _ in MATRIX}):
    if shutil.which(f"python{version}") is None:
        for bin_dir in sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin")))[-1:]:
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

_built: dict[str, Path] = {}


def _wheel(session: nox.Session) -> Path:
    """The library's wheel, built once per nox run (from an sdist of the checkout)."""
    if "wheel" not in _built:
        out = Path(tempfile.mkdtemp(prefix="ws4r-wheel-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        session.log(f"building the wheel into {out}")
        result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            session.error(f"python -m build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        (_built["wheel"],) = out.glob("*.whl")
    return _built["wheel"]


def _test_pins() -> list[str]:
    pins = {}
    for line in (ROOT / "requirements" / "test.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in TEST_TOOLS:
            pins[name] = line.strip()
    assert set(pins) == set(TEST_TOOLS), pins
    return list(pins.values())


def _run_tests(session: nox.Session, wheel: Path) -> None:
    session.chdir(ROOT)
    session.run("python", "-I", "-c", "import ws4redis_server, django; "
                "print('testing ws4redis_server', ws4redis_server.__version__, 'from', ws4redis_server.__file__, "
                "'with Django', django.get_version())")
    session.run("pytest", *LIBRARY_TESTS, *session.posargs,
                env={"WS4R_EXPECT_INSTALLED": "1", "WS4R_WHEEL": str(wheel)})


@nox.session
@nox.parametrize("python,django", MATRIX, ids=[f"py{python}-django{django}" for python, django in MATRIX])
def library(session: nox.Session, django: str) -> None:
    """The built wheel with its [test,prometheus,hiredis] extras on one Python and one Django."""
    wheel = _wheel(session)
    session.install(f"{wheel}[test,prometheus,hiredis]", f"Django=={django}.*", *_test_pins())
    _run_tests(session, wheel)


@nox.session(python="3.11")
def lowest(session: nox.Session) -> None:
    """The built wheel with every dependency and extra at the lowest version setup.py allows."""
    wheel = _wheel(session)
    constraints = ROOT / "requirements" / "lowest.txt"
    session.install("-c", str(constraints), f"{wheel}[uwsgi,prometheus,hiredis,test]", *_test_pins())
    session.run("python", "-c", f"""
import importlib.metadata as md
wrong = []
for line in open({str(constraints)!r}):
    line = line.split('#')[0].strip()
    if line:
        name, version = line.split('==')
        if md.version(name) != version:
            wrong.append(f'{{name}} {{md.version(name)}} (not {{version}})')
        else:
            print('lowest:', name, version)
assert not wrong, wrong
""")
    session.run("uwsgi", "--version")
    _run_tests(session, wheel)
