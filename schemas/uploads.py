"""What ``POST /v1/uploads`` returns: a reference a job spec can name as a custom benchmark's ``data``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.custom import DataFormat


class UploadView(BaseModel):
    """An uploaded data file, stored by the server under its results root (seen by every replica)."""

    model_config = ConfigDict(frozen=True)

    ref: str = Field(description="`upload:<sha256>.<format>`: name it as `benchmarks.custom[].data`.")
    sha256: str = Field(description="The file's sha256 (hex); a spec may pin it as `sha256`.")
    bytes: int = Field(ge=1, description="The file's size.")
    format: DataFormat = Field(description="`jsonl`, `csv` or `parquet` (from the file name, or as given).")
    filename: str = Field(description="The name it was uploaded under (for people; the ref is what counts).")
