"""WSGI: serve a registry at ``/metrics`` from Flask, Django or any WSGI server.

:class:`MetricsApp` answers ``GET``/``HEAD /metrics`` with the registry in the
Prometheus text format (gzipped when the client accepts it; 404 for another
path, 405 for another method). Standalone (``gunicorn module:metrics``), or
in front of an app, which gets every other request::

    flask_app.wsgi_app = MetricsApp(registry, app=flask_app.wsgi_app)  # Flask
    application = MetricsApp(registry, app=get_wsgi_application())  # Django wsgi.py

Mounted with werkzeug's ``DispatcherMiddleware`` at ``{"/metrics": MetricsApp(registry)}``
it serves ``/metrics`` too. Only the standard library is needed; any object with
``to_prometheus()`` can be served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ringstat.exposition import (
    FORMATS,
    Exposable,
    Format,
    check_endpoint,
    matches,
    not_found,
    refuse,
    respond,
)

__all__ = ["MetricsApp"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class MetricsApp:
    """A WSGI app serving ``registry`` (a :class:`ringstat.Registry` or any
    object with ``to_prometheus()``) at ``path``: ``PATH_INFO``, or the whole
    path (``SCRIPT_NAME`` + ``PATH_INFO``) when the app is mounted at ``path``;
    a trailing slash is ignored. ``percentiles``
    and ``formats`` as for :class:`ringstat.asgi.MetricsApp`; ``app``, if
    given, receives every other request instead of a 404."""

    def __init__(
        self,
        registry: Exposable,
        *,
        path: str = "/metrics",
        percentiles: Iterable[float] | None = None,
        formats: Sequence[Format] = FORMATS,
        app: WSGIApp | None = None,
    ) -> None:
        check_endpoint(registry, formats)
        self.registry = registry
        self.path = path
        self.percentiles = None if percentiles is None else tuple(percentiles)
        self.formats = tuple(formats)
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serves one WSGI request."""
        if not matches(environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""), self.path):
            if self.app is not None:
                return self.app(environ, start_response)
            response = not_found(self.path)
        else:
            method = environ["REQUEST_METHOD"]
            response = refuse(method) or respond(
                self.registry,
                method,
                environ.get("HTTP_ACCEPT"),
                environ.get("HTTP_ACCEPT_ENCODING"),
                percentiles=self.percentiles,
                formats=self.formats,
            )
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[response.status]
        start_response(f"{response.status} {reason}", response.headers)
        return [response.body]
