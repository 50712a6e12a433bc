"""``/v1/uploads``: upload a data file for a custom benchmark (the body is the file, streamed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from schemas.uploads import UploadView
from service import uploads
from service.api.deps import PrincipalDep, SettingsDep
from service.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=201,
    summary="Upload a data file (JSONL, CSV or Parquet) for a custom benchmark",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def create_upload(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    filename: Annotated[
        str,
        Query(min_length=1, max_length=255, description="The file's name; its extension gives the format."),
    ],
    format: Annotated[
        Literal["jsonl", "csv", "parquet"] | None, Query(description="The format, if the name does not tell it.")
    ] = None,
) -> UploadView:
    declared = request.headers.get("content-length")
    return await uploads.store_upload(
        settings=settings,
        owner=principal.owner,
        filename=filename,
        fmt=format,
        chunks=request.stream(),
        declared_size=int(declared) if declared and declared.isdigit() else None,
    )
