"""The echo page, as served through nginx."""
from __future__ import annotations

import urllib.request


def test_the_echo_page_shows_the_load_test_for_its_own_server(stack) -> None:
    with urllib.request.urlopen(f"{stack.http_url}/echo/", timeout=10) as response:
        page = response.read().decode()
    assert (f'<code id="echo-command">.venv/bin/python manage.py testecho --url {stack.ws_url} '
            "--clients 1000 --delay 5</code>") in page
