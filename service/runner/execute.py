"""One job from ``validating`` to a terminal state (ARCHITECTURE.md, "Data flow of one job").

1. **validating**: the datasets are resolved and verified (:class:`evals.datasets.DatasetSources`), the
   prompts planned, every model resolved and its renderer loaded; the shards are recorded and
   ``spec.json`` written. Any failure here ends the job ``failed`` with the reason.
2. **in_progress**: the models run side by side as far as the cluster's resources allow
   (:mod:`service.runner.sweep`), each through one :class:`workers.pool.EnginePool` that streams its
   reasoning and scoring batches (:mod:`service.runner.model_run`, :mod:`service.runner.work`). Every
   finished shard is a Parquet part (atomic) recorded in the store; shards already recorded are
   skipped, so a restarted job resumes without recomputing or duplicating a row.
3. **finalizing**: the score parts are concatenated in plan order into ``samples.parquet``; cells
   (model × benchmark × condition) with too many error rows are set aside as failed cells
   (:mod:`service.runner.cells`); the metrics of the others go into ``metrics.parquet``, rendered into
   ``report.html`` (:mod:`service.report`); then ``completed`` and the parts are removed. A job whose
   every cell failed ends ``failed``.

Cancellation is checked between shards and by the pool (its ``cancelled`` callback): finished shards
are kept (compacted into a partial ``samples.parquet``) and the job ends ``cancelled``. A shutdown of
the runner interrupts the job the same way but leaves it resumable (:class:`JobInterrupted`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import polars as pl

from evals.benchmarks import benchmark_prompts, job_benchmarks, job_samples_schema
from evals.datasets import DatasetSources
from evals.digests import prompt_digests
from schemas.errors import EngineFailure, ModelResolutionError, MoralscopeError
from schemas.jobs import JobState
from schemas.spec import ModelSpec
from schemas.tables import METRICS_SCHEMA
from service.access import AccessPolicy, data_access
from service.provenance import resolved_spec_document
from service.report import render_report
from service.results import JobFiles
from service.runner.cells import failed_cells, without_failed_cells
from service.runner.context import JobCancelled, JobInterrupted, ModelToRun, RunContext
from service.runner.plan import SCORE, JobPlan, build_plan
from service.runner.sweep import run_models
from service.settings import Settings
from service.store import JobRecord, JobStore, LeaseLost

logger = logging.getLogger("moralscope.runner")


class JobExecution:
    """Runs one claimed job; see the module docstring."""

    def __init__(self, store: JobStore, settings: Settings, job: JobRecord, *, should_stop: Callable[[], bool]) -> None:
        self.store = store
        self.settings = settings
        self.job = job
        self.spec = job.spec
        self.files = JobFiles(job.location)
        self._should_stop = should_stop
        self._cancel_checked_at = 0.0
        self._cancel_requested = job.cancel_requested
        self._on_progress: Callable[[], None] | None = None

    # -- stop conditions ---------------------------------------------------------------------------
    def _cancelled(self) -> bool:
        """Cancel requested (polled from the store at most twice a second)."""
        now = time.monotonic()
        if not self._cancel_requested and now - self._cancel_checked_at >= 0.5:
            self._cancel_checked_at = now
            self._cancel_requested = self.store.is_cancel_requested(self.job.id)
        return self._cancel_requested

    def _stop_requested(self) -> bool:
        return self._should_stop() or self._cancelled()

    def _check_stop(self) -> None:
        if self._should_stop():
            raise JobInterrupted(self.job.id)
        if self._cancelled():
            raise JobCancelled(self.job.id)

    # -- the job -----------------------------------------------------------------------------------
    def run(self, *, on_progress: Callable[[], None] | None = None) -> None:
        """Execute the job to a terminal state (or raise JobInterrupted on shutdown)."""
        self._on_progress = on_progress
        try:
            if self.job.crash_streak >= self.settings.crash_loop_limit:  # see service.store.claims
                raise EngineFailure(
                    f"the service died {self.job.crash_streak} times in a row while running this job, with no "
                    f"shard finished in between (last in state {self.job.state.value}); it is stopped as a crash "
                    "loop so that it cannot take the service down again. Check the server's log and memory, then "
                    "resubmit (a smaller shard_size or fewer items help; MORALSCOPE_CRASH_LOOP_LIMIT sets the limit)"
                )
            self._check_stop()
            plan, models = self._validate()
            self._check_stop()
            if self.store.get_job(self.job.id).state in (JobState.QUEUED, JobState.VALIDATING):
                self.store.set_state(self.job.id, JobState.IN_PROGRESS, message="in progress")
            context = RunContext(
                store=self.store,
                settings=self.settings,
                job_id=self.job.id,
                spec=self.spec,
                files=self.files,
                check_stop=self._check_stop,
                stop_requested=self._stop_requested,
                on_commit=self._progress,
            )
            run_models(context, models, plan)
            self._check_stop()
            self.store.set_state(self.job.id, JobState.FINALIZING, message="finalizing: samples and metrics")
            self._finalize(plan)
            self.store.set_state(self.job.id, JobState.COMPLETED, message="completed")
            self.files.remove_tree("parts")
        except JobCancelled:
            self._finish_cancelled()
        except (JobInterrupted, LeaseLost):  # not the job's end: it resumes (or already runs) elsewhere
            raise
        except MoralscopeError as exc:
            self._fail(exc.message)
        except Exception as exc:
            logger.exception("job %s failed", self.job.id)
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            self._progress()

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress()

    def _fail(self, message: str) -> None:
        logger.warning("job %s failed: %s", self.job.id, message)
        self.store.set_state(self.job.id, JobState.FAILED, error=message, message=f"failed: {message}")
        for model in self.store.models(self.job.id):
            if model.phase not in ("done", "failed"):
                self.store.set_model_phase(self.job.id, model.position, "failed")

    # -- validating --------------------------------------------------------------------------------
    def _validate(self) -> tuple[JobPlan, list[ModelToRun]]:
        job_id = self.job.id
        if self.store.get_job(job_id).state == JobState.QUEUED:
            self.store.set_state(job_id, JobState.VALIDATING, message="validating: datasets and models")
        try:
            sources = DatasetSources(
                self.settings.data_dir, cache_dir=self.settings.cache_dir / "datasets", download=self.settings.download
            )
            AccessPolicy.from_settings(self.settings).check_spec(self.spec)  # the operator's, as of now
            benchmarks = job_benchmarks(self.spec, data_access(self.settings, self.job.owner))
            prompts = {selected.name: benchmark_prompts(self.spec, selected, sources) for selected in benchmarks}
            plan = build_plan(self.spec, prompts, [selected.benchmark for selected in benchmarks])
            models = [self._resolve(position, model) for position, model in enumerate(self.spec.models)]
        except MoralscopeError as exc:
            exc.message = f"validation failed: {exc.message}"
            raise
        except (ValueError, OSError) as exc:
            raise ModelResolutionError(f"validation failed: {exc}") from exc
        self.store.add_shards(job_id, [(s.key, len(s.rows)) for s in plan.all_shards(len(models))])
        document = resolved_spec_document(
            job_id=job_id,
            spec=self.spec,
            models=[(m.spec.key, m.resolved, m.renderer.prompt_format) for m in models],
            datasets=[f for selected in benchmarks for f in selected.benchmark.data_files(selected.spec, sources)],
            prompt_digests=prompt_digests(self.spec, prompts),
        )
        self.files.write_text("spec.json", json.dumps(document, indent=2, sort_keys=False) + "\n")
        self.store.set_provenance(job_id, document)
        return plan, models

    def _resolve(self, position: int, model: ModelSpec) -> ModelToRun:
        from workers.models import resolve_model
        from workers.rendering import PromptRenderer

        resolved = resolve_model(
            model.name,
            model.revision,
            cache_dir=self.settings.cache_dir,
            download=self.settings.download,
            any_local_folder=self.settings.unrestricted_paths,
        )
        try:
            renderer = PromptRenderer.from_pretrained(resolved.path, model.prompt_format)
        except (ValueError, OSError) as exc:
            raise ModelResolutionError(f"model {model.key!r}: {exc}", field=f"models.{position}") from exc
        self.store.set_model_resolved(
            self.job.id, position, path=resolved.path, revision=resolved.revision, fingerprint=resolved.fingerprint
        )
        return ModelToRun(position, model, resolved, renderer)

    # -- the end -----------------------------------------------------------------------------------
    def _finished_score_parts(self) -> list[str]:
        """Parts of the finished score shards, in the samples table's order (no plan needed)."""
        conditions = {name: i for i, name in enumerate(self.spec.condition_names)}
        benchmarks = {name: i for i, name in enumerate(self.spec.benchmarks.selected)}
        finished = [s for s in self.store.shards(self.job.id) if s.key.phase == SCORE and s.state == "done"]
        finished.sort(
            key=lambda s: (s.key.model, benchmarks[s.key.benchmark], conditions[s.key.condition], s.key.shard)
        )
        return [s.path for s in finished if s.path is not None]

    def _finalize(self, plan: JobPlan) -> None:
        from evals.metrics import compute_metrics

        parts = self._finished_score_parts()
        expected = sum(1 for model in range(len(self.spec.models)) for _ in plan.shards(model, SCORE))
        if len(parts) != expected:
            raise EngineFailure(f"finalizing found {len(parts)} finished score shards, expected {expected}")
        self.files.concat_parquet("samples.parquet", plan.samples_schema, parts)
        # the prompt and reasoning texts are most of the table's bytes and no metric reads them
        columns = [n for n in plan.samples_schema.names if n not in ("prompt", "prompt_sha256", "reasoning")]
        samples = pl.from_arrow(self.files.read_parquet("samples.parquet", columns=columns))
        assert isinstance(samples, pl.DataFrame)
        failed = failed_cells(samples, self.spec.max_error_rate)
        self.store.set_failed_cells(self.job.id, [cell.model_dump() for cell in failed])
        samples = without_failed_cells(samples, failed)
        if samples.is_empty():
            first = failed[0]
            raise EngineFailure(
                f"no cell could be scored: all {len(failed)} cells (model × benchmark × condition) have more error "
                f"rows than max_error_rate={self.spec.max_error_rate:g} allows; e.g. {first.model} × {first.benchmark} "
                f"× {first.condition}: {first.errors} of {first.rows} rows failed: {first.cause}"
            )
        bootstrap = self.spec.bootstrap
        benchmarks = [selected.benchmark for selected in job_benchmarks(self.spec)]
        metrics = compute_metrics(
            samples,
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=self.spec.bootstrap_seed,
            benchmarks={b.name: b for b in benchmarks},
        )
        table = metrics.to_arrow().select(METRICS_SCHEMA.names).cast(METRICS_SCHEMA)
        self.files.write_parquet("metrics.parquet", table)
        document = json.loads(self.files.read_text("spec.json"))
        self.files.write_text("report.html", render_report(metrics, document, benchmarks, failed_cells=failed))

    def _finish_cancelled(self) -> None:
        if self.store.shards(self.job.id):  # planned: keep what finished as a partial samples table
            schema = job_samples_schema([selected.benchmark for selected in job_benchmarks(self.spec)])
            self.files.concat_parquet("samples.parquet", schema, self._finished_score_parts())
            self.files.remove_tree("parts")
        for model in self.store.models(self.job.id):
            if model.phase != "done":
                self.store.set_model_phase(self.job.id, model.position, "cancelled")
        self.store.set_state(self.job.id, JobState.CANCELLED, message="cancelled; finished shards kept")
