"""docs/existing-site.md stays true: follow it by script in a fresh project and watch it work.

Builds the library's wheel, makes a fresh virtualenv (Python 3.12, the newest Django the guide
names), installs the wheel as the guide says, runs ``django-admin startproject mysite``, applies
every snippet the guide marks with ``<!-- guide: create|append <path> -->``, then checks in
Chromium that a message published by the guide's view reaches two open pages: once under the
project's unmodified ``manage.py runserver``, once through uWSGI and nginx from the guide's
files. Finally it runs the guide's own test module with ``manage.py test``.

The only changes made to the snippets are the machine's: the Redis they point at, the
directories (``/srv/mysite``, ``/run/mysite``) and nginx's port.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.stack import ROOT, can_connect, free_port, private_dir, stop_pid, wait_for

GUIDE = ROOT / "docs" / "existing-site.md"
GUIDE_PYTHON = os.environ.get("GUIDE_PYTHON", "/root/.pyenv/versions/3.12.1/bin/python3.12")
GUIDE_DJANGO = os.environ.get("GUIDE_DJANGO", "Django>=6.1,<6.2")
MARKER = re.compile(r"<!-- guide: (create|append) (\S+) -->\n```[a-z]*\n(.*?)\n```", re.S)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@dataclass
class Snippet:
    action: str
    path: str
    text: str


def guide_snippets() -> list[Snippet]:
    """The guide's marked code blocks, in the order a reader meets them."""
    return [Snippet(*match.groups()) for match in MARKER.finditer(GUIDE.read_text())]


def test_the_guide_marks_the_files_a_reader_writes() -> None:
    paths = [snippet.path for snippet in guide_snippets()]
    assert paths[0] == "mysite/settings.py"
    for path in ("mysite/live.py", "mysite/urls.py", "templates/live.html", "websocket.ini", "django.ini",
                 "nginx-site.conf", "mysite/tests.py"):
        assert path in paths


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Runs a command; fails the test with its output if it exits non-zero."""
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        command = " ".join(map(str, args))
        pytest.fail(f"{command} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr


@dataclass
class Project:
    root: Path
    run_dir: Path
    redis_url: str

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DJANGO_", "WS4R", "REDIS_URL", "DATABASE_URL", "STATIC_ROOT", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.root / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def manage(self, *args: str, timeout: float = 600) -> str:
        return run(self.python, "manage.py", *args, cwd=self.root, env=self.env(), timeout=timeout)

    def localize(self, text: str) -> str:
        """The guide's example paths and Redis replaced by this machine's."""
        base = self.redis_url.rsplit("/", 1)[0]
        return (text.replace("redis://127.0.0.1:6379", base)
                .replace("/srv/mysite", str(self.root)).replace("/run/mysite", str(self.run_dir)))


@pytest.fixture(scope="module")
def project(redis_server) -> Iterator[Project]:
    """A fresh startproject in a new virtualenv with the built wheel, the guide applied."""
    if not Path(GUIDE_PYTHON).exists():
        pytest.fail(f"{GUIDE_PYTHON} is missing (set GUIDE_PYTHON to a Python 3.12 or newer)")
    work = private_dir("ws4r-guide-")
    root = work / "mysite"
    root.mkdir()
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, ROOT, cwd=work)
    wheel = next(dist.glob("django_ws4redis_server-*.whl"))
    run(GUIDE_PYTHON, "-m", "venv", root / ".venv", cwd=work)
    project = Project(root, work / "run", redis_server.url)
    project.run_dir.mkdir()
    project.run_dir.chmod(0o755)
    run(project.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        f"{wheel}[uwsgi,test]", GUIDE_DJANGO, cwd=work, env=project.env())
    run(root / ".venv" / "bin" / "django-admin", "startproject", "mysite", root, cwd=work, env=project.env())
    for snippet in guide_snippets():
        target = root / snippet.path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = project.localize(snippet.text) + "\n"
        if snippet.action == "append":
            with open(target, "a") as out:
                out.write("\n" + text)
        else:
            target.write_text(text)
    project.manage("migrate", "--noinput")
    yield project
    shutil.rmtree(work, ignore_errors=True)


def test_the_guided_project_passes_the_checks(project: Project) -> None:
    output = project.manage("check")
    assert "ws4redis_server." not in output, output
    assert "no issues" in output


def publish_reaches_two_pages(browser, base_url: str, artifacts_dir: Path, name: str) -> None:
    """Opens /live/ twice, publishes from the first page's form and sees it on both."""
    pages = []
    try:
        for _ in range(2):
            context = browser.new_context(base_url=base_url)
            page = context.new_page()
            page.goto("/live/")
            page.wait_for_function("document.getElementById('state').textContent === 'open'", timeout=30_000)
            pages.append(page)
        message = f"hello from the guide ({name})"
        pages[0].fill("input[name=message]", message)
        pages[0].click("button")
        for page in pages:
            page.wait_for_function(
                "text => [...document.querySelectorAll('#news li')].some(li => li.textContent === text)",
                arg=message, timeout=15_000)
        pages[1].screenshot(path=str(artifacts_dir / f"guide-{name}.png"))
    finally:
        for page in pages:
            page.context.close()


def test_runserver_from_the_unmodified_manage_py(project: Project, browser, artifacts_dir: Path) -> None:
    port = free_port()
    log = project.run_dir / "runserver.log"
    with open(log, "ab") as out:
        # Its own session: the autoreloader's child goes down with the parent on SIGINT, as in a terminal.
        server = subprocess.Popen([project.python, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=project.root,
                                  env=project.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: server.poll() is None and can_connect(("127.0.0.1", port)), 60, "runserver", log)
        publish_reaches_two_pages(browser, f"http://127.0.0.1:{port}", artifacts_dir, "runserver")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        stop_pid(server, signal.SIGTERM, 15)


def test_uwsgi_and_nginx_from_the_guides_files(project: Project, browser, artifacts_dir: Path) -> None:
    project.manage("collectstatic", "--noinput")
    port = free_port()
    site = (project.root / "nginx-site.conf").read_text().replace("listen 80;", f"listen 127.0.0.1:{port};")
    run_dir = project.run_dir
    shutil.copy(ROOT / "deploy" / "uwsgi_params", run_dir / "uwsgi_params")
    # What a distribution's nginx.conf holds around the site's server block.
    (run_dir / "nginx.conf").write_text(f"""
user root;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log warn;
events {{}}
http {{
    types {{ text/html html; text/css css; application/javascript js; }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {run_dir}/nginx-body;
    proxy_temp_path {run_dir}/nginx-proxy;
    uwsgi_temp_path {run_dir}/nginx-uwsgi;
    fastcgi_temp_path {run_dir}/nginx-fastcgi;
    scgi_temp_path {run_dir}/nginx-scgi;
{site}
}}
""")
    uwsgi = project.root / ".venv" / "bin" / "uwsgi"
    servers: list[subprocess.Popen] = []
    nginx: subprocess.Popen | None = None
    try:
        for name in ("django", "websocket"):
            with open(run_dir / f"uwsgi-{name}.log", "ab") as out:
                servers.append(subprocess.Popen([uwsgi, "--ini", project.root / f"{name}.ini"], cwd=project.root,
                                                env=project.env(), stdout=out, stderr=subprocess.STDOUT))
        for name, sock in (("django", "django.sock"), ("websocket", "ws.sock")):
            wait_for(lambda sock=sock: can_connect(str(run_dir / sock)), 60, f"uWSGI {name}",
                     run_dir / f"uwsgi-{name}.log")
        with open(run_dir / "nginx.log", "ab") as out:
            binary = shutil.which("nginx") or "/usr/sbin/nginx"
            nginx = subprocess.Popen([binary, "-p", run_dir, "-c", run_dir / "nginx.conf", "-g", "daemon off;"],
                                     stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: nginx.poll() is None and can_connect(("127.0.0.1", port)), 20, "nginx",
                 run_dir / "nginx-error.log")
        publish_reaches_two_pages(browser, f"http://127.0.0.1:{port}", artifacts_dir, "uwsgi-nginx")
    finally:
        for server in servers:
            stop_pid(server, signal.SIGTERM, 30)
        stop_pid(nginx, signal.SIGQUIT, 10)


def test_the_guides_own_tests_pass(project: Project) -> None:
    output = project.manage("test", "mysite", "-v", "2", timeout=600)
    assert re.search(r"Ran [1-9]\d* tests?", output), output
    assert "OK" in output
