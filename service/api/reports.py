"""``/v1/reports``: one report.html from several finished jobs (a sweep run as separate jobs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service import jobs
from service.api.deps import PrincipalDep, StoreDep
from service.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)

JobIds = Annotated[
    list[str],
    Query(
        alias="job",
        min_length=1,
        max_length=jobs.MAX_REPORT_JOBS,
        description="A finished job of yours; repeat for several (`?job=A&job=B`). Order: figures and tables.",
    ),
]


@router.get(
    "",
    summary="One report from several finished jobs (where their prompts agree)",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "report.html"}},
)
def combined_report(job_ids: JobIds, store: StoreDep, principal: PrincipalDep) -> Response:
    page = jobs.combined_report(store=store, principal=principal, job_ids=job_ids)
    # response_class stays the plain Response so the error responses keep their JSON content type in OpenAPI
    return Response(
        page, media_type="text/html", headers={"Content-Disposition": 'attachment; filename="moralscope-report.html"'}
    )
