"""Redis unreachable when the WebSocket loop starts: it logs clearly, keeps retrying, and serves
sockets once Redis is back (no crash loop)."""
import os

from deploy.stack import RedisServer, Stack, free_port, private_dir, wait_for
from ws4redis_server.testing import connect


def test_loop_starts_without_redis_and_serves_once_it_is_back() -> None:
    port = free_port()
    run_dir = private_dir("ws4r-outage-")
    stack = Stack(free_port(), f"redis://127.0.0.1:{port}/0", run_dir=run_dir,
                  static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "2", "WS_GEVENT": "100"},
                  nginx_workers=1)
    redis = RedisServer(port, private_dir("ws4r-outage-redis-"))
    log = run_dir / "uwsgi.log"
    try:
        stack.start()
        wait_for(lambda: log.read_text().count("is unreachable") >= 2, 60, "both workers' outage log line", log)
        masters = stack.pid_of("websocket"), stack.pid_of("django")
        # A socket is served (the echo handler needs no Redis) while Redis is down.
        with connect(f"{stack.ws_url}/ws/echo/") as ws:
            assert ws.recv(timeout=10) == "Hello!"
        redis.start()
        wait_for(lambda: log.read_text().count("is back after") >= 2, 60, "both workers reconnecting", log)
        with connect(f"{stack.ws_url}/ws/outage?subscribe-broadcast") as ws:
            redis.client().publish("broadcast:outage", "after the outage")
            assert ws.recv(timeout=10) == "after the outage"
        text = log.read_text()
        # Logged once per worker and outage, not once per retry; the workers never restarted.
        assert text.count("is unreachable") == 2, text[-2000:]
        assert "Traceback" not in text
        assert (stack.pid_of("websocket"), stack.pid_of("django")) == masters
    finally:
        stack.stop()
        redis.stop()
