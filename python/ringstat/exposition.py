"""Exposition formats for the metrics apps (:mod:`ringstat.asgi`,
:mod:`ringstat.wsgi`), and what those apps share: path matching, format
negotiation, gzip and the reply to one request, independent of the server
interface.

A format is a :class:`Format` (media type, ``Content-Type``, renderer);
:data:`FORMATS` holds the ones served by default, in preference order, and
the apps' ``formats=`` takes another list: the Prometheus text format 0.0.4
(the default) and OpenMetrics 1.0 for scrapers that prefer it (Prometheus
does), offered only when the registry has ``to_openmetrics()``.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FORMATS",
    "OPENMETRICS",
    "PROMETHEUS_TEXT",
    "Exposable",
    "Format",
    "Response",
    "check_endpoint",
    "matches",
    "negotiate",
    "not_found",
    "refuse",
    "respond",
    "wants_gzip",
]


class Exposable(Protocol):
    """Anything with ``to_prometheus()``: a :class:`ringstat.Registry`, or
    another registry type with the same method."""

    def to_prometheus(self) -> str: ...


@dataclass(frozen=True)
class Format:
    """An exposition format: ``media_type`` is matched against ``Accept``,
    ``content_type`` is sent back, ``render(registry, percentiles)`` writes
    the body (``percentiles`` is ``None`` for the registry's defaults);
    ``requires`` names a registry method without which the format is not
    offered (empty: always offered)."""

    media_type: str
    content_type: str
    render: Callable[[Exposable, Sequence[float] | None], str]
    requires: str = ""

    def offered_by(self, registry: object) -> bool:
        """Whether ``registry`` can render this format."""
        return not self.requires or callable(getattr(registry, self.requires, None))


def _render_text(registry: Exposable, percentiles: Sequence[float] | None) -> str:
    # Without percentiles, call with no argument: a duck-typed registry need
    # not take one.
    if percentiles is None:
        return registry.to_prometheus()
    return registry.to_prometheus(percentiles)  # type: ignore[call-arg]


PROMETHEUS_TEXT = Format("text/plain", "text/plain; version=0.0.4; charset=utf-8", _render_text)
"""The Prometheus text exposition format 0.0.4 (what ``to_prometheus`` writes)."""


def _render_openmetrics(registry: Exposable, percentiles: Sequence[float] | None) -> str:
    render = registry.to_openmetrics  # type: ignore[attr-defined]
    return render() if percentiles is None else render(percentiles)  # type: ignore[no-any-return]


OPENMETRICS = Format(
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
    _render_openmetrics,
    requires="to_openmetrics",
)
"""OpenMetrics 1.0 (what ``Registry.to_openmetrics`` writes)."""

FORMATS: tuple[Format, ...] = (PROMETHEUS_TEXT, OPENMETRICS)
"""The formats served by default, the first one preferred on a tie and sent
when ``Accept`` names none of them."""


def _params(header: str) -> Iterable[tuple[str, float]]:
    """``(value, q)`` for each comma-separated item of an ``Accept`` or
    ``Accept-Encoding`` header (value lowercased, q defaults to 1; a q that
    does not parse counts as 0)."""
    for item in header.split(","):
        value, *params = (p.strip() for p in item.split(";"))
        if not value:
            continue
        q = 1.0
        for p in params:
            key, _, v = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        yield value.lower(), q


def check_endpoint(registry: object, formats: Sequence[Format]) -> None:
    """What the metrics apps require of their arguments: a registry with
    ``to_prometheus()`` (``TypeError``) and at least one format
    (``ValueError``)."""
    if not callable(getattr(registry, "to_prometheus", None)):
        raise TypeError(
            f"registry must have a to_prometheus() method, not {type(registry).__name__}"
        )
    if not formats:
        raise ValueError("formats must name at least one format")


def negotiate(accept: str | None, formats: Sequence[Format] = FORMATS) -> Format:
    """The format of ``formats`` that ``accept`` (an ``Accept`` header) ranks
    highest (the more specific media range decides; ties go to the earlier
    format). With no header, or one that names none of them, the first
    format: a scraper always gets an answer it can read, as Prometheus
    clients do, rather than a 406."""
    if not accept:
        return formats[0]
    ranges = list(_params(accept))
    best, best_q = formats[0], -1.0
    for fmt in formats:
        kind = fmt.media_type.split("/")[0]
        # The most specific range that matches gives the q (RFC 9110 12.5.1).
        q, specificity = 0.0, -1
        for value, vq in ranges:
            rank = {fmt.media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(value, -1)
            if rank > specificity:
                q, specificity = vq, rank
        if q > best_q and q > 0:
            best, best_q = fmt, q
    return best


def wants_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (``gzip`` or ``*``
    with a q above 0, unless ``gzip`` itself has q=0)."""
    if not accept_encoding:
        return False
    codings = dict(_params(accept_encoding))
    if "gzip" in codings:
        return codings["gzip"] > 0
    return codings.get("*", 0.0) > 0


def matches(mount: str, path: str, served: str) -> bool:
    """Whether a request for ``path`` under the mount point ``mount`` (ASGI's
    ``root_path``, WSGI's ``SCRIPT_NAME``) is for the ``served`` path: the
    path relative to the mount point is (an app mounted elsewhere, or not
    mounted), or the whole path is (an app mounted at ``served``). A
    trailing slash is ignored and an empty path is ``/``."""

    def norm(p: str) -> str:
        return p.rstrip("/") or "/"

    return norm(served) in (norm(path), norm(mount + path))


@dataclass
class Response:
    """Status, headers and body of one reply (the body empty for ``HEAD``)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _plain(status: int, text: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
    body = text.encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *extra,
    ]
    return Response(status, headers, body)


def refuse(method: str) -> Response | None:
    """The reply to a method the metrics path does not serve (405), or
    ``None`` for ``GET`` and ``HEAD``."""
    if method in ("GET", "HEAD"):
        return None
    return _plain(405, "method not allowed: use GET or HEAD\n", [("Allow", "GET, HEAD")])


NOT_FOUND = "not found: the metrics are at {}\n"


def not_found(served: str) -> Response:
    """The 404 for a path other than the metrics path."""
    return _plain(404, NOT_FOUND.format(served))


def respond(
    registry: Exposable,
    method: str,
    accept: str | None,
    accept_encoding: str | None,
    *,
    percentiles: Sequence[float] | None = None,
    formats: Sequence[Format] = FORMATS,
) -> Response:
    """The reply to a ``GET`` or ``HEAD`` of the metrics path: the registry
    rendered in the negotiated format, gzipped when accepted (``Vary`` says
    the body depends on both headers). A format the registry cannot render
    (``Format.requires``) is not offered."""
    offered = [f for f in formats if f.offered_by(registry)] or list(formats[:1])
    fmt = negotiate(accept, offered)
    body = fmt.render(registry, percentiles).encode()
    headers = [("Content-Type", fmt.content_type), ("Vary", "Accept, Accept-Encoding")]
    if wants_gzip(accept_encoding):
        # Level 6, zlib's default: most of level 9's ratio in a fraction of its time.
        body = gzip.compress(body, compresslevel=6)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return Response(200, headers, b"" if method == "HEAD" else body)
