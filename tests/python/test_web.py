"""ringstat.asgi, ringstat.wsgi and ringstat.prometheus: the metrics apps
under real servers (uvicorn, gunicorn, wsgiref) scraped by a real client
(httpx), parsed with prometheus_client's parser; the request middleware; the
prometheus_client collector. No timing assertions."""

from __future__ import annotations

import asyncio
import gzip
import math
import sys
import threading
import wsgiref.simple_server
import wsgiref.util
import wsgiref.validate
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("fastapi")
pytest.importorskip("flask")
pytest.importorskip("uvicorn")
pytest.importorskip("gunicorn")

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount, Route

import ringstat
from conftest import serve
from ringstat.asgi import MetricsApp, MetricsMiddleware
from ringstat.exposition import FORMATS, OPENMETRICS, PROMETHEUS_TEXT, Format, negotiate, wants_gzip
from ringstat.prometheus import RingstatCollector
from ringstat.wsgi import MetricsApp as WSGIMetricsApp

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# What web_apps.make_registry() holds, as parsed samples.
EXPECTED: Samples = {
    ("logins_total", (("region", "eu"),)): 3.0,
    ("users_online", ()): 7.0,
    ("latency_seconds", (("quantile", "0.5"),)): 0.5,
    ("latency_seconds_count", ()): 3.0,
    ("latency_seconds_sum", ()): 2.25,
}


def check_scrapes(base: str) -> None:
    """What a scraper sees from an app made of web_apps.make_registry() with
    a POST /bump endpoint: the content type, gzip, HEAD, 405, live values."""
    with httpx.Client(base_url=base, timeout=30) as client:
        plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"] == CONTENT_TYPE
        assert "content-encoding" not in plain.headers
        got = samples(plain.text)
        for key, value in EXPECTED.items():
            assert got[key] == pytest.approx(value, rel=1e-3), key
        assert got[("bumps_total", ())] == 0

        # gzip when asked (httpx asks by default and decodes it).
        zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.text == plain.text
        with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
            body = b"".join(r.iter_raw())
        assert gzip.decompress(body).decode() == plain.text
        assert int(r.headers["content-length"]) == len(body)

        # Prometheus' own Accept header gets OpenMetrics (ends with # EOF).
        prom = client.get(
            "/metrics",
            headers={
                "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
                "text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
            },
        )
        assert prom.headers["content-type"] == OPENMETRICS.content_type
        assert prom.text.endswith("# EOF\n")
        assert prom.headers["vary"] == "Accept, Accept-Encoding"

        head = client.head("/metrics", headers={"Accept-Encoding": "identity"})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == plain.headers["content-length"]

        post = client.post("/metrics")
        assert post.status_code == 405
        assert post.headers["allow"] == "GET, HEAD"

        for _ in range(3):
            assert client.post("/bump").status_code == 200
        assert samples(client.get("/metrics").text)[("bumps_total", ())] == 3


def test_asgi_app_as_a_starlette_route_under_uvicorn(tmp_path: Path) -> None:
    def uvicorn(fd: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--log-level", "warning",
                "--app-dir", str(HERE), "web_apps:starlette_app"]  # fmt: skip

    with serve(uvicorn, tmp_path, tmp_path / "uvicorn.log") as base:
        check_scrapes(base)
        assert httpx.get(base + "/nope").status_code == 404


def test_asgi_app_on_its_own_under_uvicorn(tmp_path: Path) -> None:
    # Its own 404 and 405, lifespan, and a duck-typed registry.
    def uvicorn(fd: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--log-level", "info",
                "--lifespan", "on", "--app-dir", str(HERE), "web_apps:standalone_app"]  # fmt: skip

    log = tmp_path / "uvicorn.log"
    with serve(uvicorn, tmp_path, log) as base, httpx.Client(base_url=base) as client:
        r = client.get("/metrics")
        assert (r.status_code, r.headers["content-type"]) == (200, CONTENT_TYPE)
        assert samples(r.text) == {("duck", ()): 42.0}
        assert client.get("/metrics/").status_code == 200
        nope = client.get("/other")
        assert nope.status_code == 404
        assert "/metrics" in nope.text
        assert client.put("/metrics").status_code == 405
        assert client.delete("/other").status_code == 404
    # --lifespan on fails the start unless the app completes the startup.
    assert "Application startup complete" in log.read_text()


def test_wsgi_app_in_front_of_flask_under_gunicorn(tmp_path: Path) -> None:
    def gunicorn(fd: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1",
                "--chdir", str(HERE), "web_apps:flask_app"]  # fmt: skip

    with serve(gunicorn, tmp_path, tmp_path / "gunicorn.log") as base:
        check_scrapes(base)
        assert httpx.get(base + "/nope").status_code == 404  # Flask's


@pytest.fixture
def wsgiref_server() -> Iterator[tuple[str, ringstat.Registry]]:
    """MetricsApp behind wsgiref's validator (which raises on any breach of
    the WSGI spec), served by wsgiref on a thread."""
    registry = ringstat.Registry()
    app = wsgiref.validate.validator(WSGIMetricsApp(registry))

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", registry
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_wsgi_app_under_wsgiref_validator(wsgiref_server: tuple[str, ringstat.Registry]) -> None:
    base, registry = wsgiref_server
    registry.counter("hits").inc(5)
    with httpx.Client(base_url=base) as client:
        r = client.get("/metrics")
        assert (r.status_code, r.headers["content-type"]) == (200, CONTENT_TYPE)
        assert r.headers["content-encoding"] == "gzip"
        assert samples(r.text) == {("hits_total", ()): 5.0}
        assert client.head("/metrics").content == b""
        assert client.get("/elsewhere").status_code == 404
        r = client.post("/metrics", content=b"x")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_asgi_app_mounted_under_a_prefix_and_in_front() -> None:
    registry = ringstat.Registry()
    registry.gauge("g").set(1)

    async def main() -> None:
        # Mounted at its path, or elsewhere with the path relative to the mount.
        mounted = Starlette(
            routes=[
                Mount("/metrics", MetricsApp(registry)),
                Mount("/admin", MetricsApp(registry, path="/stats")),
            ]
        )
        async with asgi_client(mounted) as client:
            for path in ("/metrics/", "/admin/stats"):
                r = await client.get(path)
                assert samples(r.text) == {("g", ()): 1.0}, path
            assert (await client.get("/admin/metrics")).status_code == 404
        # In front of another app, which gets everything else.
        inner = FastAPI()

        @inner.get("/hello")
        async def hello() -> str:
            return "hi"

        async with asgi_client(MetricsApp(registry, app=inner)) as client:
            assert samples((await client.get("/metrics")).text) == {("g", ()): 1.0}
            assert (await client.get("/hello")).json() == "hi"
            assert (await client.get("/nope")).status_code == 404

    asyncio.run(main())


def test_negotiation_and_gzip_headers() -> None:
    assert negotiate(None) is PROMETHEUS_TEXT
    assert negotiate("application/json") is PROMETHEUS_TEXT  # nothing matches: the default
    om = Format("application/openmetrics-text", "application/openmetrics-text", lambda r, p: "")
    both = (PROMETHEUS_TEXT, om)
    prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4,*/*;q=0.1"
    assert negotiate(prometheus, both) is om
    assert negotiate("text/plain, application/openmetrics-text", both) is PROMETHEUS_TEXT
    assert negotiate("text/*;q=0.2, application/*;q=0.9", both) is om
    assert negotiate("application/openmetrics-text;q=0, */*", both) is PROMETHEUS_TEXT
    assert negotiate("application/openmetrics-text;q=bad, text/plain;q=0.1", both) is (
        PROMETHEUS_TEXT
    )
    assert FORMATS == (PROMETHEUS_TEXT, OPENMETRICS)
    for header, want in [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("*", True),
        ("*, gzip;q=0", False),
        ("identity", False),
        ("br", False),
    ]:
        assert wants_gzip(header) is want, header


def test_another_format_is_served_by_negotiation() -> None:
    # A Format in `formats` is chosen by Accept; OpenMetrics is offered only
    # to a registry that can render it.
    registry = ringstat.Registry()
    registry.counter("c").inc()
    as_json = Format("application/json", "application/json", lambda r, p: '{"c": 1}')
    app = MetricsApp(registry, formats=(PROMETHEUS_TEXT, as_json))

    class TextOnly:
        def to_prometheus(self) -> str:
            return "# TYPE x counter\nx_total 1\n"

    prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4"

    async def main() -> None:
        async with asgi_client(app) as client:
            r = await client.get("/metrics", headers={"Accept": "application/json"})
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"c": 1}
            r = await client.get("/metrics")
            assert r.headers["content-type"] == CONTENT_TYPE
        async with asgi_client(MetricsApp(registry)) as client:
            r = await client.get("/metrics", headers={"Accept": prometheus})
            assert r.headers["content-type"] == OPENMETRICS.content_type
            assert r.text == registry.to_openmetrics()
        async with asgi_client(MetricsApp(TextOnly())) as client:
            r = await client.get("/metrics", headers={"Accept": prometheus})
            assert r.headers["content-type"] == CONTENT_TYPE
            assert r.text == TextOnly().to_prometheus()

    asyncio.run(main())


def test_apps_refuse_what_cannot_be_served() -> None:
    with pytest.raises(TypeError, match="to_prometheus"):
        MetricsApp(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="to_prometheus"):
        WSGIMetricsApp(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one format"):
        MetricsApp(ringstat.Registry(), formats=())
    with pytest.raises(TypeError, match="snapshot"):
        RingstatCollector("registry")  # type: ignore[arg-type]


def test_wsgi_app_mounted_by_werkzeug_dispatcher() -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client

    registry = ringstat.Registry()
    registry.gauge("g").set(2)
    app = DispatcherMiddleware(
        WSGIMetricsApp(registry, path="/"),  # not found for anything but "/"
        {"/metrics": WSGIMetricsApp(registry), "/admin": WSGIMetricsApp(registry, path="/stats")},
    )
    client = Client(app)
    for path in ("/metrics", "/metrics/", "/admin/stats"):
        r = client.get(path)
        assert (r.status_code, r.headers["Content-Type"]) == (200, CONTENT_TYPE), path
        assert samples(r.get_data(as_text=True)) == {("g", ()): 2.0}
    assert client.get("/admin/metrics").status_code == 404
    assert client.get("/other").status_code == 404


def test_percentiles_are_passed_through() -> None:
    registry = ringstat.Registry()
    registry.histogram("h", max_value=100).record(10)
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/metrics"
    got: list[str] = []
    app = WSGIMetricsApp(registry, percentiles=[25, 75])
    body = b"".join(app(environ, lambda status, headers: got.append(status)))
    assert got == ["200 OK"]
    quantiles = {dict(k[1]).get("quantile") for k in samples(body.decode())}
    assert quantiles == {"0.25", "0.75", None}


def test_render_runs_off_the_event_loop() -> None:
    # Shown by order: the render waits for a coroutine on the app's loop to
    # let it go on. On the loop's own thread it would wait in vain (until the
    # timeout); on a worker thread the coroutine runs and releases it.
    registry = ringstat.Registry()
    registry.counter("c").inc()
    rendering, go = threading.Event(), threading.Event()
    released: list[bool] = []

    def render(reg: Any, ps: Any) -> str:
        rendering.set()
        released.append(go.wait(timeout=30))
        return PROMETHEUS_TEXT.render(reg, ps)

    fmt = Format(PROMETHEUS_TEXT.media_type, PROMETHEUS_TEXT.content_type, render)
    app = MetricsApp(registry, formats=(fmt,))

    async def main() -> None:
        async with asgi_client(app) as client:
            scrape = asyncio.ensure_future(client.get("/metrics"))
            while not scrape.done():
                await asyncio.sleep(0.001)
                if rendering.is_set():
                    go.set()
            assert samples((await scrape).text) == {("c_total", ()): 1.0}

    asyncio.run(main())
    assert released == [True]


# ----- the middleware ---------------------------------------------------------


def instrumented(registry: ringstat.Registry) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MetricsMiddleware, registry=registry, exclude=["/metrics"])
    app.routes.append(Route("/metrics", MetricsApp(registry)))

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        if user_id == 0:
            raise HTTPException(404)
        return {"id": user_id}

    @app.post("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app


def test_middleware_counts_requests_by_route_template() -> None:
    registry = ringstat.Registry()
    app = instrumented(registry)

    async def main() -> str:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for i in range(1, 6):
                assert (await client.get(f"/users/{i}")).status_code == 200
            assert (await client.get("/users/0")).status_code == 404
            assert (await client.get("/nowhere")).status_code == 404
            assert (await client.post("/crash")).status_code == 500
            assert (await client.request("BREW", "/users/1")).status_code == 405
            return (await client.get("/metrics")).text

    got = samples(asyncio.run(main()))
    requests = {
        dict(labels)["method"] + " " + dict(labels)["route"] + " " + dict(labels)["status"]: v
        for (name, labels), v in got.items()
        if name == "http_requests_total"
    }
    assert requests == {
        "GET /users/{user_id} 200": 5,
        "GET /users/{user_id} 404": 1,
        "GET unmatched 404": 1,
        "POST /crash 500": 1,
        "other /users/{user_id} 405": 1,
    }
    route = (("method", "GET"), ("route", "/users/{user_id}"))
    assert got[("http_request_duration_seconds_count", route)] == 6
    assert got[("http_request_duration_seconds_sum", route)] > 0
    assert got[("http_requests_in_progress", ())] == 0


def test_middleware_passes_lifespan_and_counts_in_progress() -> None:
    registry = ringstat.Registry()
    seen: list[float] = []
    gauge = registry.gauge("http_requests_in_progress")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            seen.append(-1)
            return
        seen.append(gauge.value)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = MetricsMiddleware(app, registry)

    async def main() -> None:
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        async with asgi_client(middleware) as client:
            assert (await client.get("/x")).status_code == 204

    asyncio.run(main())
    assert seen == [-1, 1]
    assert gauge.value == 0
    assert (
        samples(registry.to_prometheus())[
            ("http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "204")))
        ]
        == 1
    )


def test_middleware_never_fails_a_request_for_its_metrics() -> None:
    # Room for the middleware's three families' first series only: later
    # routes and statuses hit max_series; durations above max_seconds are
    # rejected. The requests are answered all the same.
    registry = ringstat.Registry(max_series=3)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = MetricsMiddleware(app, registry, max_seconds=1e-6)

    async def main() -> list[int]:
        async with asgi_client(middleware) as client:
            return [(await client.request(m, "/")).status_code for m in ("GET", "POST", "PUT")]

    assert asyncio.run(main()) == [200, 200, 200]
    assert registry.series == 3
    got = samples(registry.to_prometheus())
    assert got[("http_requests_in_progress", ())] == 0
    assert (
        got[("http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "200")))]
        == 1
    )


# ----- prometheus_client interop ----------------------------------------------


def test_collector_exposes_the_registry_in_prometheus_client() -> None:
    registry = ringstat.Registry()
    registry.counter("logins", {"region": "eu"}).inc(3)
    registry.counter("logins", {"region": "us"}).inc(4)
    registry.counter("already_total").inc(2)
    registry.gauge("online").set(-5)
    h = registry.histogram("session_seconds", {"app": "web"}, max_value=3600.0, unit=1e-3)
    for s in (1.0, 2.0, 30.0):
        h.record(s)
    registry.histogram("empty", max_value=10)
    registry.rate("logins_rate").inc()
    registry.counter("lab", {"v": 'q"uote\\back\nline'}).inc()

    prom = CollectorRegistry()
    prom.register(RingstatCollector(registry, percentiles=[50, 99.9, 100, 0.001]))
    text = generate_latest(prom).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["logins"].type == "counter"
    assert families["already"].type == "counter"
    assert families["online"].type == "gauge"
    assert families["session_seconds"].type == "summary"
    assert families["logins_rate"].type == "gauge"
    # Same samples, same values as ringstat's own exposition (NaN aside).
    ours = samples(registry.to_prometheus([50, 99.9, 100, 0.001]))
    theirs = samples(text)
    assert theirs.keys() == ours.keys()
    for key, value in ours.items():
        assert theirs[key] == value or (math.isnan(value) and math.isnan(theirs[key])), key
    assert theirs[("session_seconds", (("app", "web"), ("quantile", "0.999")))] == 30.0
    assert theirs[("lab_total", (("v", 'q"uote\\back\nline'),))] == 1

    # Read at each scrape.
    registry.counter("logins", {"region": "eu"}).inc()
    assert samples(generate_latest(prom).decode())[("logins_total", (("region", "eu"),))] == 4


def test_collector_in_the_default_registry_next_to_prometheus_client_metrics() -> None:
    from prometheus_client import REGISTRY
    from prometheus_client import Counter as PCounter

    registry = ringstat.Registry()
    registry.gauge("ringstat_side").set(2)
    collector = RingstatCollector(registry)
    own = PCounter("client_side_web_test", "Counted by prometheus_client.")
    own.inc()
    REGISTRY.register(collector)
    try:
        got = samples(generate_latest().decode())
        assert got[("ringstat_side", ())] == 2
        assert got[("client_side_web_test_total", ())] == 1
    finally:
        REGISTRY.unregister(collector)
        REGISTRY.unregister(own)


# ----- the example, as a user runs it ------------------------------------------


def test_fastapi_example_under_uvicorn(tmp_path: Path) -> None:
    def uvicorn(fd: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--log-level", "warning",
                "--app-dir", str(EXAMPLES), "fastapi_service:app"]  # fmt: skip

    with (
        serve(uvicorn, tmp_path, tmp_path / "uvicorn.log") as base,
        httpx.Client(base_url=base) as client,
    ):
        for user in ("ann", "bob", "cy"):
            assert client.post("/register", params={"user": user}).status_code == 200
            assert client.post("/login", params={"user": user}).status_code == 200
        assert client.post("/logout", params={"user": "bob"}).status_code == 200
        assert client.post("/logout", params={"user": "bob"}).status_code == 409
        assert client.get("/users/ann").json() == {"online": True}
        assert client.get("/missing").status_code == 404
        got = samples(client.get("/metrics").text)

    def requests(method: str, route: str, status: int) -> float:
        labels = (("method", method), ("route", route), ("status", str(status)))
        return got[("http_requests_total", labels)]

    assert requests("POST", "/login", 200) == 3
    assert requests("POST", "/logout", 200) == 1
    assert requests("POST", "/logout", 409) == 1
    assert requests("GET", "/users/{user}", 200) == 1
    assert requests("GET", "unmatched", 404) == 1
    post_login = (("method", "POST"), ("route", "/login"))
    assert got[("http_request_duration_seconds_count", post_login)] == 3
    assert got[("http_requests_in_progress", ())] == 0
    assert got[("user_events_total", (("kind", "login"),))] == 3
    assert got[("users_online", ())] == 2
    assert got[("session_seconds_count", ())] == 1
    assert got[("logins_rate", ())] > 0
