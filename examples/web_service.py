"""User-activity statistics in a web service, exposed at /metrics.

A small HTTP service (the standard library's ``http.server``, one thread per
request) handles ``POST /register``, ``/login`` and ``/logout?user=ID``,
counts them in a :class:`ringstat.Registry` and serves the registry in the
Prometheus text format at ``GET /metrics``, ready for a Prometheus scrape.

    python examples/web_service.py               # serve on http://127.0.0.1:8000
    curl -X POST 'http://127.0.0.1:8000/login?user=42'
    curl http://127.0.0.1:8000/metrics

    python examples/web_service.py --self-test   # start, send requests, print /metrics, stop
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import ringstat

registry = ringstat.Registry()
events = {
    kind: registry.counter("events", {"kind": kind}) for kind in ("register", "login", "logout")
}
logins_rate = registry.rate("logins_rate", window=60.0)  # logins per second, last minute
online = registry.gauge("users_online")
# Request handling time in microseconds, up to 60 s, 2 significant digits.
request_us = registry.histogram("request_us", max_value=60_000_000, significant_digits=2)

# Which users are logged in, so a logout without a login is not counted.
_online_users: set[str] = set()
_users_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if urlparse(self.path).path != "/metrics":
            self._reply(404, "not found\n")
            return
        self._reply(200, registry.to_prometheus(), "text/plain; version=0.0.4")

    def do_POST(self) -> None:
        started = time.perf_counter()
        url = urlparse(self.path)
        user = parse_qs(url.query).get("user", [""])[0]
        kind = url.path.lstrip("/")
        if kind not in events or not user:
            self._reply(400, "POST /register, /login or /logout with ?user=ID\n")
            return
        with _users_lock:
            if kind == "login" and user not in _online_users:
                _online_users.add(user)
                online.inc()
            elif kind == "logout" and user in _online_users:
                _online_users.remove(user)
                online.dec()
        events[kind].inc()
        if kind == "login":
            logins_rate.inc()
        self._reply(200, "ok\n")
        request_us.record(round((time.perf_counter() - started) * 1e6))

    def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one log line per request would drown the output


def self_test(server: ThreadingHTTPServer) -> None:
    """Sends a few hundred requests from four threads, then prints /metrics."""
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def post(path: str) -> None:
        with urllib.request.urlopen(urllib.request.Request(base + path, method="POST")) as r:
            r.read()

    def client(first: int) -> None:
        for user in range(first, first + 25):
            post(f"/register?user={user}")
            post(f"/login?user={user}")
            if user % 5:
                post(f"/logout?user={user}")

    clients = [threading.Thread(target=client, args=(i * 100,)) for i in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    with urllib.request.urlopen(base + "/metrics") as r:
        print(r.read().decode(), end="")
    print(f"users online: {online.value}, request p99: {request_us.percentile(99)} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a free port, send requests, exit"
    )
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0 if args.self_test else args.port), Handler)
    if not args.self_test:
        print(f"serving on http://127.0.0.1:{server.server_address[1]} (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        return
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        self_test(server)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


if __name__ == "__main__":
    main()
