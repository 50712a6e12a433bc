"""Probes and metrics: ``/healthz`` (alive), ``/readyz`` (Ray reachable, store writable), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service import telemetry
from service.api.deps import RunnerDep, SettingsDep, StoreDep
from service.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness: the store is writable and Ray reachable", responses={503: ERROR_RESPONSES[500]}
)
def readyz(store: StoreDep, settings: SettingsDep, runner: RunnerDep) -> dict[str, object]:
    executor = None if runner is None else runner.executor
    return telemetry.readiness(
        store,
        settings,
        runner_alive=None if runner is None else runner.alive,
        ray_status=None if executor is None else executor.ray_status(),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request) -> Response:
    body = telemetry.prometheus_text(request.app.state.metrics_registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
