"""User-activity statistics in a FastAPI service, with request metrics.

``POST /register``, ``/login`` and ``/logout?user=ID`` feed the user-activity
statistics (events by kind, logins per second, users online, online time per
session); :class:`ringstat.asgi.MetricsMiddleware` counts every request by
method, route and status, times it and tracks those in progress; ``GET
/metrics`` serves it all to Prometheus (:class:`ringstat.asgi.MetricsApp`).

    pip install "ringstat[web]"
    uvicorn --app-dir examples fastapi_service:app     # http://127.0.0.1:8000
    curl -X POST 'http://127.0.0.1:8000/login?user=42'
    curl http://127.0.0.1:8000/metrics

    python examples/fastapi_service.py --self-test  # free port, send requests, print /metrics
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException
from starlette.routing import Route

import ringstat
from ringstat.asgi import MetricsApp, MetricsMiddleware

# A cap on series guards against a label that takes unbounded values.
registry = ringstat.Registry(max_series=10_000)
events = registry.counter("user_events", help="User events by kind.", labelnames=["kind"])
logins_rate = registry.rate("logins_rate", window=60.0, help="Logins per second, last minute.")
online = registry.gauge("users_online", help="Users logged in now.")
# Online time per session in seconds (a float histogram kept to the millisecond, up to a day).
session_seconds = registry.histogram(
    "session_seconds", max_value=86_400.0, unit=1e-3, help="Online time per session, seconds."
)

# Who is logged in, since when (the endpoints are coroutines on one event
# loop, so no lock is needed).
_since: dict[str, float] = {}

app = FastAPI(title="user activity")
app.add_middleware(MetricsMiddleware, registry=registry, exclude=["/metrics"])
app.routes.append(Route("/metrics", MetricsApp(registry)))


@app.post("/register")
async def register(user: str) -> dict[str, str]:
    events.labels("register").inc()
    return {"user": user}


@app.post("/login")
async def login(user: str) -> dict[str, str]:
    events.labels("login").inc()
    logins_rate.inc()
    if user not in _since:
        _since[user] = time.monotonic()
        online.inc()
    return {"user": user}


@app.post("/logout")
async def logout(user: str) -> dict[str, str]:
    since = _since.pop(user, None)
    if since is None:
        raise HTTPException(409, f"user {user} is not logged in")
    events.labels("logout").inc()
    online.dec()
    session_seconds.record(time.monotonic() - since)
    return {"user": user}


@app.get("/users/{user}")
async def status(user: str) -> dict[str, bool]:
    return {"online": user in _since}


def self_test(base: str) -> None:
    """Four client threads of 25 users each: register, log in, look
    themselves up, and 4 in 5 log out; one logout of a stranger. Then prints
    /metrics."""

    def client(first: int) -> None:
        with httpx.Client(base_url=base) as http:
            for user in range(first, first + 25):
                for action in ("register", "login"):
                    http.post(f"/{action}", params={"user": user}).raise_for_status()
                http.get(f"/users/{user}").raise_for_status()
                if user % 5:
                    http.post("/logout", params={"user": user}).raise_for_status()

    clients = [threading.Thread(target=client, args=(i * 100,)) for i in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert httpx.post(base + "/logout", params={"user": "nobody"}).status_code == 409
    print(httpx.get(base + "/metrics").text, end="")
    p99 = session_seconds.percentile(99)
    print(f"users online: {online.value}, session p99: {p99:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a free port, send requests, exit"
    )
    args = parser.parse_args()
    if not args.self_test:
        uvicorn.run(app, host="127.0.0.1", port=args.port)
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        while not server.started and thread.is_alive():
            time.sleep(0.01)
        self_test(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


if __name__ == "__main__":
    main()
