"""The aiohttp application: health, readiness, metrics, pages and WebSockets.

`init_app(...)` receives everything already built by the composition root; handlers reach it
through typed `web.AppKey`s.
"""

from __future__ import annotations

from aiohttp import web

from centralino.metrics import Metrics
from centralino.web.health import Readiness, http_status

READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", Metrics)


async def healthz(request: web.Request) -> web.Response:
    readiness = request.app[READINESS]
    if not readiness.started.is_set():
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    report = await request.app[READINESS].report()
    return web.json_response(report, status=http_status(report))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def init_app(*, readiness: Readiness, metrics_registry: Metrics) -> web.Application:
    app = web.Application(client_max_size=1024**2)  # webhooks are small; 1 MiB is generous
    app[READINESS] = readiness
    app[METRICS] = metrics_registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
