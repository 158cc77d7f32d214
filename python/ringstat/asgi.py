"""ASGI: serve a registry at ``/metrics``, and count an app's requests.

:class:`MetricsApp` answers ``GET``/``HEAD /metrics`` with the registry in the
Prometheus text format (gzipped when the client accepts it; 404 for another
path, 405 for another method). Standalone (``uvicorn module:metrics``), as a
route of FastAPI or Starlette (``app.routes.append(Route("/metrics",
MetricsApp(registry)))``; ``app.add_route`` works too but its type hints
want a request handler), mounted (``app.mount("/metrics",
MetricsApp(registry))``, which redirects ``/metrics`` to ``/metrics/``), or
in front of an app (``MetricsApp(registry, app=fastapi_app)`` answers
``/metrics`` and hands every other request to ``app``). The registry
is rendered on a worker thread: ``Registry.to_prometheus()`` releases the
GIL, so the event loop keeps serving while a large registry is rendered.

:class:`MetricsMiddleware` counts requests by method, route template and
status, times them into a float histogram (seconds) and tracks the requests
in progress::

    app = FastAPI()
    app.add_middleware(MetricsMiddleware, registry=registry, exclude=["/metrics"])
    app.routes.append(Route("/metrics", MetricsApp(registry)))

Only the standard library is needed; any object with ``to_prometheus()``
can be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from ringstat._ringstat import Registry
from ringstat.exposition import (
    FORMATS,
    Exposable,
    Format,
    Response,
    check_endpoint,
    matches,
    not_found,
    refuse,
    respond,
)

__all__ = ["MetricsApp", "MetricsMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    """The request header ``name`` (lowercase), repeated ones joined by commas."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]
    return ", ".join(values) if values else None


def _mount_and_path(scope: Scope) -> tuple[str, str]:
    """The mount point (``root_path``) and the request path relative to it
    (``path`` without ``root_path`` when it holds it, as servers and
    Starlette now pass it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return root, path[len(root) :]
    return root, path


async def _send(send: Send, response: Response) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Accepts startup and shutdown, for when the app is served on its own."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class MetricsApp:
    """An ASGI app serving ``registry`` (a :class:`ringstat.Registry` or any
    object with ``to_prometheus()``) at ``path``.

    ``path`` is the path served: the request path relative to the app's
    mount point, or the whole path when the app is mounted at ``path``
    (``app.mount("/metrics", MetricsApp(registry))``); a trailing slash is
    ignored. ``percentiles`` are passed to
    ``to_prometheus`` (default: the registry's). ``formats`` are the
    exposition formats offered to ``Accept`` (see :mod:`ringstat.exposition`;
    today only the text format 0.0.4). ``app``, if given, receives every
    request that is not for ``path`` (and lifespan and websocket events)
    instead of a 404.
    """

    def __init__(
        self,
        registry: Exposable,
        *,
        path: str = "/metrics",
        percentiles: Iterable[float] | None = None,
        formats: Sequence[Format] = FORMATS,
        app: ASGIApp | None = None,
    ) -> None:
        check_endpoint(registry, formats)
        self.registry = registry
        self.path = path
        self.percentiles = None if percentiles is None else tuple(percentiles)
        self.formats = tuple(formats)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one ASGI connection."""
        kind = scope["type"]
        if kind == "http" and matches(*_mount_and_path(scope), self.path):
            await _send(send, await self.render(scope))
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif kind == "http":
            await _send(send, not_found(self.path))
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def render(self, scope: Scope) -> Response:
        """The reply to a request for the metrics path: the registry is
        rendered (and compressed) on a worker thread, off the event loop."""
        refused = refuse(scope["method"])
        if refused is not None:
            return refused
        return await asyncio.to_thread(
            respond,
            self.registry,
            scope["method"],
            _header(scope, b"accept"),
            _header(scope, b"accept-encoding"),
            percentiles=self.percentiles,
            formats=self.formats,
        )


# The methods counted by name; anything else is "other", so a client cannot
# create series by inventing methods.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


class MetricsMiddleware:
    """ASGI middleware recording every HTTP request of ``app`` in ``registry``:

    - ``{prefix}_requests_total{method, route, status}``: a counter;
    - ``{prefix}_request_duration_seconds{method, route}``: a histogram of
      floats in seconds (kept to the microsecond, up to ``max_seconds``,
      ``significant_digits`` digits), from the first byte of the request to
      the last of the response;
    - ``{prefix}_requests_in_progress``: a gauge of requests being served.

    ``route`` is the matched route's template (``/users/{id}``, from the
    ``route`` Starlette and FastAPI put in the scope), so ids in paths do not
    make new series; a request no route matched is ``route="unmatched"``.
    Methods other than the standard seven count as ``method="other"``. A
    request that raises counts as status 500 (the exception propagates).
    Recording never fails a request: past the registry's ``max_series`` new
    series are not recorded, nor are durations above ``max_seconds``.
    Paths in ``exclude`` (``/metrics``, say) are not recorded. Lifespan and
    websocket events pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: Registry,
        *,
        prefix: str = "http",
        max_seconds: float = 60.0,
        significant_digits: int = 2,
        exclude: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.exclude = frozenset(exclude)
        self.requests = registry.counter(
            f"{prefix}_requests",
            help="HTTP requests by method, route template and status.",
            labelnames=("method", "route", "status"),
        )
        self.duration = registry.histogram(
            f"{prefix}_request_duration_seconds",
            max_value=max_seconds,
            significant_digits=significant_digits,
            unit=1e-6,
            help="HTTP request duration in seconds, by method and route template.",
            labelnames=("method", "route"),
        )
        self.in_progress = registry.gauge(
            f"{prefix}_requests_in_progress", help="HTTP requests being served."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one ASGI connection, recording it if it is an HTTP request."""
        if scope["type"] != "http" or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.in_progress.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            self.in_progress.dec()
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            # Recording never fails the request: a registry at its max_series
            # raises SeriesLimitError, a duration above max_seconds ValueError
            # (counted in the histogram's `rejected`), both ValueErrors.
            with contextlib.suppress(ValueError):
                self.requests.labels(method, route, str(status)).inc()
            with contextlib.suppress(ValueError):
                self.duration.labels(method, route).record(seconds)
