"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from callserver.metrics import Metrics


def ops_routes(metrics: Metrics, readiness: Callable[[], str]) -> list[web.AbstractRouteDef]:
    """``/healthz`` (alive), ``/readyz`` (503 until ``readiness`` says ready) and ``/metrics``."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        status = readiness()
        return web.json_response({"status": status}, status=200 if status == "ready" else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_page),
    ]
