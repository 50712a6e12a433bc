"""One model's work in a job: the **reason** phase, then the **score** phase, through one engine pool.

The pool (:class:`workers.pool.EnginePool`) is created once per model and used for all its benchmarks
and conditions. Shards are sent ``num_actors`` at a time so every actor has work; each finished shard
is written as a Parquet part (atomically) and then recorded in the store, which is what makes a restart
resume exactly where the last run stopped. Reasoning is read back from its part when the score phase
needs it, so it is generated once per (model, item, condition, sample), however often the job restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from evals.scoring import flatten_forms
from schemas.errors import EngineFailure, MoralscopeError
from schemas.inference import EngineConfig, GenerateRequest, ResolvedModel, ScoreRequest
from schemas.spec import JobSpec, ModelSpec
from service.results import JobFiles
from service.runner import rows as row_builder
from service.runner.plan import REASON, SCORE, JobPlan, Shard, part_path, reasoning_seed
from service.settings import Settings
from service.store import JobStore, ShardKey
from workers.cluster import ensure_ray

T = TypeVar("T")
logger = logging.getLogger("moralscope.runner")


class JobInterrupted(Exception):
    """The runner is shutting down; the job keeps its state and resumes on the next start."""


class JobCancelled(Exception):
    """The user cancelled the job."""


@dataclass
class ModelToRun:
    """A model of the job, resolved, with its prompt renderer."""

    position: int
    spec: ModelSpec
    resolved: ResolvedModel
    renderer: Any
    """A workers.rendering.PromptRenderer (typed loosely: workers is imported lazily)."""


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ModelPhases:
    """Runs the shards of one job's models; stops (raising JobCancelled / JobInterrupted) when asked."""

    def __init__(
        self,
        *,
        store: JobStore,
        settings: Settings,
        job_id: str,
        spec: JobSpec,
        files: JobFiles,
        check_stop: Callable[[], None],
        stop_requested: Callable[[], bool],
        on_commit: Callable[[], None],
    ) -> None:
        self.store = store
        self.settings = settings
        self.job_id = job_id
        self.spec = spec
        self.files = files
        self.check_stop = check_stop
        self.stop_requested = stop_requested
        self.on_commit = on_commit

    def run(self, model: ModelToRun, plan: JobPlan) -> None:
        """The model's unfinished reason shards, then its unfinished score shards, through one pool."""
        done = {s.key for s in self.store.shards(self.job_id) if s.state == "done"}
        reason = [s for s in plan.shards(model.position, REASON) if s.key not in done]
        score = [s for s in plan.shards(model.position, SCORE) if s.key not in done]
        if not reason and not score:
            self.store.set_model_phase(self.job_id, model.position, "done")
            return
        self.check_stop()
        key = model.spec.key
        self.store.set_model_phase(
            self.job_id,
            model.position,
            "reason" if reason else "score",
            message=f"{key}: loading the model on {model.spec.num_actors} {model.spec.engine} engine actor(s)",
        )
        pool = self._open_pool(model)
        try:
            if reason:
                self.store.set_model_phase(
                    self.job_id, model.position, "reason", message=f"{key}: generating reasoning"
                )
                for group in _chunks(reason, max(1, model.spec.num_actors)):
                    self._reason(model, pool, group)
            if score:
                self.store.set_model_phase(self.job_id, model.position, "score", message=f"{key}: scoring answers")
                for group in _chunks(score, max(1, model.spec.num_actors)):
                    self._score(model, pool, group)
        finally:
            try:
                pool.close()
            except Exception:  # a failed close must not hide why the phase ended
                logger.warning("closing the engine pool of %s failed", key, exc_info=True)
        self.store.set_model_phase(self.job_id, model.position, "done", message=f"{model.spec.key}: done")

    def _open_pool(self, model: ModelToRun) -> Any:
        from workers.pool import EnginePool

        ensure_ray(self.settings.effective_ray_address, num_cpus=self.settings.ray_num_cpus)
        config = EngineConfig(
            model_path=model.resolved.path,
            engine=model.spec.engine,
            dtype=model.spec.dtype,
            prompt_format=model.renderer.prompt_format,
            num_threads=max(1, int(model.spec.cpus_per_actor)),
            options=model.spec.engine_options,
        )
        return EnginePool(
            config,
            engine_factory=self.settings.load_engine_factory(),
            num_actors=model.spec.num_actors,
            num_gpus_per_actor=model.spec.gpus_per_actor,
            num_cpus_per_actor=model.spec.cpus_per_actor,
            max_retries=self.settings.engine_max_retries,
            cancelled=self.stop_requested,
        )

    def _call_pool(
        self, method: Callable[[list[T]], list[Any]], requests: list[T], what: str, shards: Sequence[Shard]
    ) -> list[Any]:
        try:
            results = method(requests)
        except Exception as exc:
            self.check_stop()  # a pool stopped by our cancelled() callback is not an engine failure
            self.store.fail_shards(self.job_id, [s.key for s in shards])
            message = exc.message if isinstance(exc, MoralscopeError) else f"{type(exc).__name__}: {exc}"
            raise EngineFailure(f"{what} failed: {message}") from exc
        self.check_stop()
        if len(results) != len(requests):
            raise EngineFailure(f"{what}: the engine returned {len(results)} results for {len(requests)} requests")
        return results

    def _reason(self, model: ModelToRun, pool: Any, shards: Sequence[Shard]) -> None:
        cot = self.spec.cot
        requests, seeds = [], []
        for shard in shards:
            for row in shard.rows:
                seed = reasoning_seed(
                    self.spec.seed,
                    model.spec.key,
                    shard.plan.benchmark,
                    shard.plan.condition,
                    row.prompt.key,
                    row.sample,
                )
                seeds.append(seed)
                requests.append(
                    GenerateRequest(
                        prompt=model.renderer.render(row.prompt.turns.reasoning_dialogue()),
                        max_new_tokens=cot.max_new_tokens,
                        temperature=cot.temperature,
                        top_p=cot.top_p,
                        stop=tuple(model.renderer.stop_strings),
                        seed=seed,
                    )
                )
        results = self._call_pool(pool.generate, requests, f"{model.spec.key}: generating reasoning", shards)
        position = 0
        for shard in shards:
            count = len(shard.rows)
            part = row_builder.reasoning_table(
                shard.rows, seeds[position : position + count], results[position : position + count]
            )
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in results[position : position + count])
            self._commit(shard, part, tokens)
            position += count

    def _score(self, model: ModelToRun, pool: Any, shards: Sequence[Shard]) -> None:
        labels = row_builder.model_labels_json(model.spec.labels)
        prompts: list[str] = []
        reasonings: list[tuple[str, int] | None] = []
        for shard in shards:
            by_row = self._reasoning_of(shard) if shard.plan.is_cot else {}
            for row in shard.rows:
                reasoning = by_row.get((row.prompt.key, row.sample)) if row.prompt.is_cot else None
                if row.prompt.is_cot and reasoning is None:
                    raise EngineFailure(f"no reasoning recorded for {row.prompt.key} sample {row.sample}")
                reasonings.append(reasoning)
                prompts.append(
                    model.renderer.render(row.prompt.turns.answer_dialogue(reasoning[0] if reasoning else None))
                )
        all_rows = [row for shard in shards for row in shard.rows]
        requests = [
            ScoreRequest(prompt=text, continuations=flatten_forms(row.prompt.candidates))
            for text, row in zip(prompts, all_rows, strict=True)
        ]
        results = self._call_pool(pool.score, requests, f"{model.spec.key}: scoring", shards)
        position = 0
        for shard in shards:
            sample_rows = []
            tokens = 0
            for offset, row in enumerate(shard.rows):
                index = position + offset
                result = results[index]
                tokens += result.prompt_tokens + result.continuation_tokens
                sample_rows.append(
                    row_builder.sample_row(
                        model=model.spec.key,
                        model_labels=labels,
                        row=row,
                        prompt_text=prompts[index],
                        result=result,
                        reasoning=reasonings[index],
                    )
                )
            self._commit(shard, row_builder.samples_table(sample_rows, shard.plan.samples_schema), tokens)
            position += len(shard.rows)

    def _reasoning_of(self, shard: Shard) -> dict[tuple[str, int], tuple[str, int]]:
        key = ShardKey(shard.key.model, shard.key.benchmark, shard.key.condition, REASON, shard.key.shard)
        return row_builder.reasoning_by_row(self.files.read_parquet(part_path(key, shard.plan.condition_index)))

    def _commit(self, shard: Shard, table: Any, tokens: int) -> None:
        relative = part_path(shard.key, shard.plan.condition_index)
        self.files.write_parquet(relative, table)
        self.store.finish_shard(self.job_id, shard.key, path=relative, tokens=tokens)
        self.on_commit()
