"""Apps that tests/python/test_web.py serves with real servers (uvicorn,
gunicorn): each holds a registry with known values and a ``POST /bump``
endpoint that adds to a counter, so a test can check that a scrape reads
the live registry.

    uvicorn --app-dir tests/python web_apps:starlette_app
    gunicorn --chdir tests/python web_apps:flask_app
"""

from __future__ import annotations

from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import ringstat
import ringstat.asgi
import ringstat.wsgi


def make_registry() -> ringstat.Registry:
    """The values every app starts with (test_web.EXPECTED)."""
    registry = ringstat.Registry()
    registry.counter("logins", {"region": "eu"}, help="Logins.").inc(3)
    registry.gauge("users_online").set(7)
    latency = registry.histogram("latency_seconds", max_value=60.0, unit=1e-3)
    for seconds in (0.25, 0.5, 1.5):
        latency.record(seconds)
    return registry


# Starlette, /metrics as a route.
registry = make_registry()
bumps = registry.counter("bumps")


async def bump(request: Request) -> PlainTextResponse:
    bumps.inc()
    return PlainTextResponse("ok\n")


starlette_app = Starlette(
    routes=[
        Route("/metrics", ringstat.asgi.MetricsApp(registry)),
        Route("/bump", bump, methods=["POST"]),
    ]
)


class TextRegistry:
    """Not a ringstat registry: anything with to_prometheus() is served."""

    def to_prometheus(self) -> str:
        return "# TYPE duck gauge\nduck 42\n"


# The ASGI app on its own: its own 404, 405 and lifespan.
standalone_app = ringstat.asgi.MetricsApp(TextRegistry())

# Flask, the WSGI app in front of Flask's.
flask_registry = make_registry()
flask_bumps = flask_registry.counter("bumps")
flask_app = Flask(__name__)


@flask_app.post("/bump")
def flask_bump() -> str:
    flask_bumps.inc()
    return "ok\n"


flask_app.wsgi_app = ringstat.wsgi.MetricsApp(  # type: ignore[method-assign]
    flask_registry, app=flask_app.wsgi_app
)
