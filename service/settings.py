"""Service settings, read from ``MORALSCOPE_*`` environment variables (and an optional .env file).

Settings are built on demand (:func:`get_settings`), never at import time, so tests and the CLI can
set the environment first. Every variable a deployment sets must be a field here (a test checks the
Kubernetes manifests against this class).
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.paths import default_cache_dir, default_state_dir


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="MORALSCOPE_", env_file=".env", extra="ignore", frozen=True)

    # where things live
    data_dir: Path | None = Field(
        None, description="Dataset folder searched before the cache (layout as shared/datasets)."
    )
    cache_dir: Path = Field(default_factory=default_cache_dir, description="Dataset and model cache.")
    download: bool = Field(True, description="Download missing datasets from their pinned upstream URLs.")
    results_uri: str = Field(
        default_factory=lambda: str(default_state_dir() / "results"),
        description="Where job results go: a local folder or any pyarrow filesystem URI (s3://bucket/prefix, gs://...).",
    )
    store_path: Path = Field(
        default_factory=lambda: default_state_dir() / "jobs.sqlite3",
        description="The SQLite job store (used when store_url is not set).",
    )
    store_url: str | None = Field(
        None,
        description=(
            "The job store as a URL: sqlite:///absolute/path (one machine) or "
            "postgresql://user:password@host:5432/dbname (any number of API replicas). Default: store_path."
        ),
    )
    lease_ttl_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description=(
            "A running job's lease: renewed every quarter of it; a job whose runner died is taken over "
            "by another runner (or the restarted one) once it has expired."
        ),
    )
    crash_loop_limit: int = Field(
        3,
        ge=1,
        description=(
            "A job is stopped as a crash loop after this many service deaths in a row with no shard "
            "committed in between; a job that keeps committing survives any number of restarts."
        ),
    )

    # compute
    ray_address: str | None = Field(
        None,
        description="Ray cluster address (ray://host:10001 or auto); default: $RAY_ADDRESS, else a local Ray.",
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray (ignored with a cluster).")
    concurrency: int = Field(1, ge=1, le=64, description="Jobs that run at the same time.")
    engine_max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description=(
            "Times a batch is re-sent after its engine actor died or hung, before it is cut in halves to find the "
            "request at fault (which then becomes an error row)."
        ),
    )
    batch_deadline_floor_s: float = Field(
        600.0,
        gt=0,
        description=(
            "Least time a batch may run before its actor counts as hung and is replaced; the deadline is "
            "max(this, batch_deadline_factor × the batch's expected time from the measured throughput)."
        ),
    )
    batch_deadline_factor: float = Field(
        10.0, ge=1, description="How many times its expected time a batch may take (see batch_deadline_floor_s)."
    )
    engine_factory: str | None = Field(
        None,
        description=(
            "`module:callable` building every model's engine from its EngineConfig instead of the spec's "
            "hf/vllm (a custom backend, or a test double); the module must be importable by the Ray workers."
        ),
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    allow_unauthenticated_remote: bool = Field(
        False,
        description="Listen beyond 127.0.0.1 with no API keys configured (unsafe outside a private network).",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="API keys, comma-separated. With keys, every /v1 call needs one."
    )
    api_keys_file: Path | None = Field(None, description="A file with one API key per line (a mounted Secret).")
    session_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description=(
            "Signs the web console's session cookies (16+ characters). Unset: a random secret per process, so "
            "console logins end when the server restarts and are not shared by replicas; set it from a Secret "
            "when several API replicas serve one address."
        ),
    )
    session_max_age: int = Field(12 * 3600, ge=60, le=30 * 24 * 3600, description="Seconds a web console login lasts.")

    # what a job may read (the operator's: see service.access)
    allowed_local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders (comma-separated) under which a job submitted over the API may name server paths: model "
            "folders and custom benchmark data files. Default: none (every server path is refused)."
        ),
    )
    allowed_uri_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "URI prefixes (comma-separated, e.g. s3://team-bucket/benchmarks/) a job submitted over the API may read "
            "custom data from, with the service's credentials. Default: none."
        ),
    )
    unrestricted_paths: bool = Field(
        False,
        description=(
            "Trust every path and URI in a spec (what `moralscope run` does for the user's own specs on the user's "
            "machine). Never set it on a shared server."
        ),
    )
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest data file accepted by POST /v1/uploads (and read for a job)."
    )

    # limits
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest accepted request body.")
    max_items_per_job: int = Field(2_000_000, ge=1, description="Most prompts (rows) one job may plan.")
    max_queued_jobs_per_key: int = Field(20, ge=1, description="Most unfinished jobs one API key may have.")

    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            scheme = value.split("://", 1)[0] if "://" in value else value[:20]
            raise ValueError(f"store_url must be sqlite:///path or postgresql://..., got {scheme!r}")
        return value or None

    @field_validator("api_keys", "allowed_local_roots", "allowed_uri_prefixes", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def all_api_keys(self) -> list[str]:
        """Keys from MORALSCOPE_API_KEYS and from the keys file (blank lines and # comments ignored)."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read MORALSCOPE_API_KEYS_FILE {self.api_keys_file}: {exc.strerror}") from exc
            keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return keys

    def load_engine_factory(self) -> Any:
        """The callable named by ``engine_factory`` (None when unset); ValueError when it cannot be imported."""
        if not self.engine_factory:
            return None
        module_name, _, attribute = self.engine_factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(
                f"MORALSCOPE_ENGINE_FACTORY={self.engine_factory!r} cannot be imported ({exc}); "
                "give it as module:callable"
            ) from exc
        if not callable(factory):
            raise ValueError(f"MORALSCOPE_ENGINE_FACTORY={self.engine_factory!r} is not callable")
        return factory

    @property
    def effective_store_url(self) -> str:
        """``store_url``, else the SQLite file ``store_path``."""
        return self.store_url or f"sqlite://{quote(str(self.store_path.expanduser().resolve()))}"

    @property
    def effective_ray_address(self) -> str | None:
        return self.ray_address or os.environ.get("RAY_ADDRESS") or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache with ``get_settings.cache_clear()``)."""
    return Settings()
