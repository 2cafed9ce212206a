"""The distribution django-ws4redis-server: the wheel holds the library and nothing of the demo
site, requirements/lowest.txt is the lower end of every range in setup.py, and prometheus_client
stays optional (the [prometheus] extra)."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from django.test import RequestFactory

import ws4redis_server
from ws4redis_server import metrics, views

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "ws4redis_server"
NAME = "django_ws4redis_server"


def _setup_requirements() -> dict[str, str]:
    """Every requirement of setup.py (install_requires and extras): normalized name -> specifier."""
    tree = ast.parse((ROOT / "setup.py").read_text("utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("INSTALL_REQUIRES", "EXTRAS_REQUIRE"):
            value = ast.literal_eval(node.value)
            lines = value if isinstance(value, list) else [line for group in value.values() for line in group]
            for line in lines:
                match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)", line)
                assert match, line
                found[_normalize(match.group(1))] = match.group(3)
    assert found, "no INSTALL_REQUIRES / EXTRAS_REQUIRE in setup.py"
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _lowest() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / "lowest.txt").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[_normalize(name)] = version
    return pins


def test_lowest_txt_pins_the_lower_bound_of_every_range() -> None:
    ranges, lowest = _setup_requirements(), _lowest()
    assert set(lowest) == set(ranges), "requirements/lowest.txt and setup.py name different packages"
    for name, specifier in ranges.items():
        bounds = dict(re.findall(r"(>=|<|<=|==|!=|~=|>)\s*([0-9][0-9.]*)", specifier))
        assert ">=" in bounds, f"{name}: no lower bound in {specifier!r}"
        assert _version(lowest[name]) == _version(bounds[">="]), (name, specifier, lowest[name])
        if "<" in bounds:
            assert _version(bounds[">="]) < _version(bounds["<"]), (name, specifier)


def test_the_tested_package_is_the_installed_one() -> None:
    """Under nox (WS4R_EXPECT_INSTALLED=1) the tests must import the wheel, not the checkout."""
    location = Path(ws4redis_server.__file__).resolve()
    print(f"ws4redis_server {ws4redis_server.__version__} from {location}")
    if os.environ.get("WS4R_EXPECT_INSTALLED") == "1":
        assert "site-packages" in location.parts, location
        assert SOURCE not in location.parents, location


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel nox built (WS4R_WHEEL), or one built here from an sdist of the checkout."""
    given = os.environ.get("WS4R_WHEEL")
    if given:
        return Path(given)
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (requirements/test.txt has it)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def _expected_files() -> set[str]:
    """What the wheel must hold: every module of every package under ws4redis_server/ (a
    directory with __init__.py, whoever added it), the JS client and the templates."""
    expected: set[str] = set()
    for path in SOURCE.rglob("*"):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix == ".py" and (path.parent / "__init__.py").exists():
            expected.add(relative)
        elif relative.startswith(("ws4redis_server/static/ws4redis/", "ws4redis_server/templates/ws4redis/")):
            expected.add(relative)
    return expected


def test_the_wheel_holds_the_library_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(archive.read(f"{NAME}-{ws4redis_server.__version__}.dist-info/METADATA")
                                     .decode("utf-8"))
    dist_info = f"{NAME}-{ws4redis_server.__version__}.dist-info/"
    strays = sorted(name for name in names if not name.startswith(("ws4redis_server/", dist_info)))
    assert strays == [], f"files outside the library in {wheel.name}: {strays}"
    library = {name for name in names if name.startswith("ws4redis_server/")}
    assert not [name for name in library if "__pycache__" in name or name.endswith(".pyc")]
    if not os.environ.get("WS4R_WHEEL"):  # built from this checkout: it must match it exactly
        assert library == _expected_files()
    assert {"ws4redis_server/__init__.py", "ws4redis_server/static/ws4redis/ws4redis.js",
            "ws4redis_server/templates/ws4redis/stats.html"} <= library
    assert metadata["Name"] == "django-ws4redis-server"
    assert metadata["Version"] == ws4redis_server.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert set(metadata.get_all("Provides-Extra")) == {"uwsgi", "prometheus", "hiredis", "test"}
    for line in metadata.get_all("Requires-Dist"):
        name = _normalize(re.split(r"[\s\[<>=!~;(]", line, maxsplit=1)[0])
        if name in ("uwsgi", "prometheus-client", "hiredis"):
            assert "extra ==" in line, f"{line!r}: only some users need it, it belongs in an extra"
    assert not [line for line in metadata.get_all("Requires-Dist") if "==" in line.split(";")[0]], \
        "a library asks for ranges, not pins"


def test_the_metrics_view_answers_501_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as if not installed
    monkeypatch.setattr(metrics, "snapshot", lambda: {"host:1": {"sockets_open": 2}})
    response = views.prometheus(RequestFactory().get("/ws-stats/metrics"))
    assert response.status_code == 501
    assert b"django-ws4redis-server[prometheus]" in response.content
    monkeypatch.setattr(views.metrics, "snapshot", lambda: {"host:1": {"sockets_open": 2, "messages_sent": 5}})
    assert views.stats_json(RequestFactory().get("/ws-stats/json")).status_code == 200


def test_the_metrics_view_with_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("prometheus_client", reason="the [prometheus] extra is not installed")
    monkeypatch.setattr(metrics, "snapshot", lambda: {"host:1": {"sockets_open": 2, "messages_sent": 5}})
    response = views.prometheus(RequestFactory().get("/ws-stats/metrics"))
    assert response.status_code == 200
    assert b'ws4redis_sockets_open{worker="host:1"} 2.0' in response.content
    assert b'ws4redis_messages_sent_total{worker="host:1"} 5.0' in response.content
