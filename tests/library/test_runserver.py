"""``runserver`` in a project made by ``django-admin startproject``, with "ws4redis_server" added
at the END of INSTALLED_APPS and nothing else changed (manage.py untouched): pages, static files
and WebSockets on one port, with and without the autoreloader and through ``django-admin``; a
clean stop on SIGINT; ``manage.py check`` reporting the library's ids."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect

BIN = Path(sys.executable).parent
DJANGO_ADMIN = str(BIN / "django-admin")

ECHO_URLS = '''
from django.http import HttpResponse
from django.template import Context, RequestContext, Template

from ws4redis_server import websocket

PAGE = "{% load ws4redis %}<!doctype html><html><head>{% ws4redis_config %}</head><body></body></html>"


@websocket
def echo(ws):
    while (message := ws.recv()) is not None:
        ws.send(message)


def with_request(request):
    return HttpResponse(Template(PAGE).render(RequestContext(request, {"request": request})))


def without_request(request):
    return HttpResponse(Template(PAGE).render(Context()))


urlpatterns += [path("ws/echo/", echo), path("page/with-request/", with_request),
                path("page/without-request/", without_request)]
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Path:
    """A fresh ``startproject`` site: ws4redis_server last in INSTALLED_APPS, the tests' Redis,
    an echo handler under /ws/echo/. manage.py is left as Django wrote it."""
    root = tmp_path_factory.mktemp("startproject")
    subprocess.run([DJANGO_ADMIN, "startproject", "mysite", str(root)], check=True, env=child_env(root))
    settings = root / "mysite" / "settings.py"
    text = settings.read_text()
    assert "'django.contrib.staticfiles',\n]" in text
    text = text.replace("'django.contrib.staticfiles',\n]", "'django.contrib.staticfiles',\n    'ws4redis_server',\n]")
    text += f"\nWS4REDIS_CONNECTION = {{'url': {redis_server.url!r}}}\nWS4REDIS_HEARTBEAT = '--heartbeat--'\n"
    settings.write_text(text)
    with open(root / "mysite" / "urls.py", "a") as urls:
        urls.write(ECHO_URLS)
    return root


def child_env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "WS4R")) and key not in ("PYTHONPATH", "REDIS_URL")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Server:
    autoreload = False

    def __init__(self, root: Path, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.log = root / f"runserver-{self.port}.log"
        with open(self.log, "wb") as out:
            # SIGINT as in a terminal, even if whoever runs the tests ignores it.
            self.process = subprocess.Popen(
                [*command, f"127.0.0.1:{self.port}"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return response.read()

    def wait_until_serving(self) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, f"runserver exited:\n{self.output}"
            try:
                return b"export class WS4Redis" in self.get("/static/ws4redis/ws4redis.js")
            except OSError:
                return False

        wait_for(serving, 60, "runserver")

    def children(self) -> list[int]:
        found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"runserver did not stop on SIGINT:\n{self.output}") from None


# name: (command line, run from the project's parent directory, through DJANGO_SETTINGS_MODULE,
#        with the autoreloader)
COMMANDS = {
    "manage.py autoreload": (lambda root: [sys.executable, "manage.py", "runserver"], False, False, True),
    "manage.py --noreload": (lambda root: [sys.executable, "manage.py", "runserver", "--noreload"],
                             False, False, False),
    "manage.py from elsewhere": (lambda root: [sys.executable, str(root / "manage.py"), "runserver", "--noreload"],
                                 True, False, False),
    "django-admin autoreload": (lambda root: [DJANGO_ADMIN, "runserver"], False, True, True),
    "python -m django --noreload": (lambda root: [sys.executable, "-m", "django", "runserver", "--noreload"],
                                    False, True, False),
}


@pytest.fixture(params=list(COMMANDS), scope="module")
def server(request: pytest.FixtureRequest, project: Path) -> Iterator[Server]:
    yield from start(project, request.param)


def start(project: Path, name: str) -> Iterator[Server]:
    make, elsewhere, by_settings_module, autoreload = COMMANDS[name]
    env = child_env(project)
    if by_settings_module:  # as django-admin users do: the project importable, its settings named
        env.update(DJANGO_SETTINGS_MODULE="mysite.settings", PYTHONPATH=str(project))
    started = Server(project, make(project), env, cwd=project.parent if elsewhere else project)
    started.autoreload = autoreload
    try:
        started.wait_until_serving()
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait(10)


def test_pages_and_static_files(server: Server) -> None:
    assert b"Django administration" in server.get("/admin/login/")
    assert b"Development server (gevent)" in server.output.encode()


def test_echo_handler(server: Server) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/ws/echo/", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        assert ws.subprotocol is None


def test_a_message_published_in_redis_reaches_a_subscribed_socket(server: Server, redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    facility = f"news{server.port}"
    with connect(f"ws://127.0.0.1:{server.port}/ws/{facility}?subscribe-broadcast", open_timeout=10) as ws:
        # PUBLISH answers how many subscribers got it: 1 once the server's hub has subscribed.
        wait_for(lambda: client.publish(f"broadcast:{facility}", "from redis") >= 1, 10, "the hub's subscription")
        assert ws.recv(timeout=10) == "from redis"
    client.close()


def test_the_first_offered_subprotocol_is_answered(server: Server) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/ws/echo/", subprotocols=["chat.v2", "chat.v1"],
                 open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v2"
        ws.send("still echoing")
        assert ws.recv(timeout=10) == "still echoing"


def test_sigint_stops_cleanly(server: Server) -> None:
    children = server.children()
    # With the autoreloader, a watching parent and its serving child; else the server alone
    # (re-executed through ws4redis_server.bootstrap under the same PID).
    assert len(children) == (1 if server.autoreload else 0)
    assert server.interrupt() == 0
    output = server.output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "needs gevent" not in output
    for pid in children:  # the autoreloader's serving child goes too
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists()
                 or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], 10, f"child {pid} to exit")


def test_check_reports_the_librarys_ids(project: Path) -> None:
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=project, env=child_env(project),
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # warnings only
    assert "ws4redis_server.W001" in output  # startproject's database sessions
    assert "ws4redis_server.W003" in output  # startproject's TEMPLATES lack the context processor
    assert "ws4redis_server.E" not in output


def test_check_reports_a_bad_setting_as_an_error(project: Path) -> None:
    env = child_env(project)
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'; "
            "from django.conf import settings; settings.WS4REDIS_EXPIRE = -5; "
            "from django.core.management import execute_from_command_line; "
            "execute_from_command_line(['manage.py', 'check'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "ws4redis_server.E001" in result.stderr and "WS4REDIS_EXPIRE" in result.stderr


BROWSER_PROBE = """async () => {
    const { WS4Redis, pageConfig } = await import("/static/ws4redis/ws4redis.js");
    const config = JSON.parse(document.getElementById("ws4redis-config").textContent);
    const echoed = await new Promise((resolve, reject) => {
        const ws = new WS4Redis({ path: "echo/", reconnect: false,
                                  onopen: () => ws.send("ping"),
                                  onmessage: (data) => { resolve([ws.uri, ws.heartbeat, data]); ws.close(); },
                                  onclose: () => reject(new Error("closed")) });
    });
    const explicit = new WS4Redis({ uri: pageConfig().uri + "echo/", reconnect: false });
    explicit.close();
    const broadcast = new WS4Redis({ facility: "news", flags: ["subscribe-broadcast", "echo"], reconnect: false });
    broadcast.close();
    return { configUri: config.uri, echoed, explicitHeartbeat: explicit.heartbeat, broadcastUri: broadcast.uri };
}"""


@pytest.mark.browser
@pytest.mark.parametrize("page", ["with-request", "without-request"])
def test_the_js_client_takes_uri_and_heartbeat_from_the_page(project: Path, page: str) -> None:
    """In Chromium: ``new WS4Redis({path})`` on a page with ``{% ws4redis_config %}`` connects
    with the page's heartbeat; the URI comes from the request or, without one, from
    window.location; an explicit ``uri`` keeps the old default heartbeat (null)."""
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.skip(f"{executable} is missing")
    # The browser tests run with make test; make matrix's sessions install no browser driver.
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (make test installs it)")
    server = next(runner := start(project, "manage.py --noreload"))
    base = f"ws://127.0.0.1:{server.port}/ws/"

    def drive() -> dict:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
            try:
                tab = browser.new_page()
                tab.goto(f"http://127.0.0.1:{server.port}/page/{page}/")
                return tab.evaluate(BROWSER_PROBE)
            finally:
                browser.close()

    try:
        # Playwright's sync API keeps an event loop in its thread: not in the tests' own thread.
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(drive).result(timeout=60)
    finally:
        runner.close()
    assert result["configUri"] == (base if page == "with-request" else None)
    assert result["echoed"] == [base + "echo/", "--heartbeat--", "ping"]
    assert result["explicitHeartbeat"] is None
    assert result["broadcastUri"] == base + "news?subscribe-broadcast&echo"
