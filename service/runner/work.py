"""One model's work in a job as a stream of batches: what to send next, and what a result completes.

**Affinity.** Rows are grouped into item blocks: ``block_items`` consecutive items of a benchmark (the
same items under every condition, in plan order). A batch holds rows of one shard within one item block
(at most ``batch_size``) and carries the affinity key (benchmark, block), so the same items under every
condition, and a CoT answer after its reasoning, go to the same actor (:mod:`workers.routing`), whose
prefix cache then holds their shared prompt prefix. Keys are item blocks, not shards, so this holds
whatever the shard size and however many reasoning samples each item has.

**Order.** The next batch is, in turn:

1. a CoT answer whose reasoning has just come back (priority 0): the reasoning → answer chain is the
   critical path, and the actor that generated the reasoning still has it in its cache;
2. reasoning (priority 1), block by block: generation is the long pole, so it starts first and the
   cheap scoring fills in around it;
3. every other scoring (priority 2), block by block, the conditions of a block back to back.

**Commits.** A shard is committed (its Parquet part written, then recorded in the store) as soon as its
last row is in. A reason shard always commits before its score shard: a CoT answer is only sent once its
reasoning is back, and a reason shard commits in the step where its last reasoning comes back. A CoT
answer whose reasoning failed is not sent: it becomes an error row naming the cause. On restart the work
is rebuilt from the shards not yet recorded; recorded reasoning is read back from its part.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from evals.scoring import flatten_forms
from schemas.inference import GenerateRequest, GenerateResult, ScoreRequest, ScoreResult
from service.runner import rows as row_builder
from service.runner.batches import Run, ShardFill, WorkBatch
from service.runner.context import ModelToRun, RunContext
from service.runner.plan import REASON, SCORE, ConditionPlan, JobPlan, part_path, reasoning_seed
from service.runner.rows import Reasoning
from service.store import ShardKey

ANSWER_PRIORITY, REASON_PRIORITY, SCORE_PRIORITY = 0, 1, 2


class ModelWork:
    """The unfinished shards of one model, as batches in dispatch order (see the module docstring)."""

    def __init__(
        self,
        ctx: RunContext,
        model: ModelToRun,
        plan: JobPlan,
        done: set[ShardKey],
        *,
        batch_size: int,
        block_items: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.plan = plan
        self.done = set(done)
        self.recorded = frozenset(done)
        """Shards committed before this run: their reasoning is read back; any other reasoning is generated
        here, and its answers follow it (never taken again from the part this run commits)."""
        self.batch_size = batch_size
        self.block_items = block_items or batch_size
        self.labels = row_builder.model_labels_json(model.spec.labels)
        self._shards = {s.key: s for phase in (REASON, SCORE) for s in plan.shards(model.position, phase)}
        self._fills: dict[ShardKey, ShardFill] = {}
        self._recorded_reasoning: dict[ShardKey, dict[tuple[str, int], Reasoning]] = {}
        self._answers: deque[WorkBatch] = deque()
        self._ordinals: dict[str, dict[str, int]] = {}
        self._streams = [self._stream(REASON), self._stream(SCORE)]
        self.outstanding: dict[str, int] = {REASON: 0, SCORE: 0}
        pending = [s for key, s in self._shards.items() if key not in self.done]
        self.requests_total = sum(len(s.rows) for s in self._shards.values())
        self.requests_done = self.requests_total - sum(len(s.rows) for s in pending)
        self.remaining = {phase: sum(len(s.rows) for s in pending if s.key.phase == phase) for phase in (REASON, SCORE)}

    # -- state -------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return not self._streams and not self._answers and not any(self.outstanding.values())

    @property
    def reasoning_left(self) -> bool:
        """Whether reasoning is still to be generated (the model's phase is ``reason``)."""
        return self.remaining[REASON] > 0

    # -- batches out -------------------------------------------------------------------------------
    def next_batch(self, *, most: dict[str, int] | None = None) -> WorkBatch | None:
        """The next batch to submit, of at most ``most[kind]`` requests (None when nothing is ready: everything
        is sent, or answers wait for their reasoning)."""
        batch = self._answers.popleft() if self._answers else None
        while batch is None and self._streams:
            batch = next(self._streams[0], None)
            if batch is None:
                self._streams.pop(0)
        if batch is None:
            return None
        limit = most.get(batch.kind) if most else None
        if limit is not None and len(batch.requests) > limit:
            batch, *rest = batch.split(limit)
            self._answers.extendleft(reversed(rest))  # the rest goes next, before anything else
        self.outstanding[REASON if batch.kind == "generate" else SCORE] += 1
        return batch

    def _stream(self, phase: str) -> Iterator[WorkBatch]:
        for benchmark in dict.fromkeys(c.benchmark for c in self.plan.conditions):
            runs: dict[int, list[Run]] = {}
            for condition in self.plan.conditions:
                if condition.benchmark == benchmark and (condition.is_cot or phase == SCORE):
                    for run in self._runs(condition):
                        runs.setdefault(run.block, []).append(run)
            for block in sorted(runs):
                for run in runs[block]:
                    batch = self._batch(phase, run)
                    if batch is not None:
                        yield batch

    def _runs(self, condition: ConditionPlan) -> list[Run]:
        ordinals = self._ordinals.setdefault(condition.benchmark, {})
        if not ordinals:  # an item's ordinal within its benchmark: the same under every condition
            for other in self.plan.conditions:
                if other.benchmark == condition.benchmark:
                    for row in other.rows:
                        ordinals.setdefault(row.prompt.item_id, len(ordinals))
        runs: list[Run] = []
        for index, row in enumerate(condition.rows):
            shard, offset = divmod(index, self.plan.shard_size)
            block = ordinals[row.prompt.item_id] // self.block_items
            last = runs[-1] if runs else None
            if last and (last.shard, last.block) == (shard, block) and last.stop - last.start < self.batch_size:
                runs[-1] = Run(condition, shard, last.start, offset + 1, block)
            else:
                runs.append(Run(condition, shard, offset, offset + 1, block))
        return runs

    def _key(self, run: Run, phase: str) -> ShardKey:
        return ShardKey(self.model.position, run.plan.benchmark, run.plan.condition, phase, run.shard)

    def _fill(self, key: ShardKey) -> ShardFill:
        fill = self._fills.get(key)
        if fill is None:
            fill = self._fills[key] = ShardFill(self._shards[key])
        return fill

    def _batch(self, phase: str, run: Run) -> WorkBatch | None:
        reason_key, score_key = self._key(run, REASON), self._key(run, SCORE)
        affinity = (run.plan.benchmark, run.block)
        offsets = list(range(run.start, run.stop))
        if phase == REASON:
            if reason_key in self.done:
                return None
            return self._reason_batch(self._fill(reason_key), offsets, affinity)
        if score_key in self.done or (run.plan.is_cot and reason_key not in self.recorded):
            return None  # done, or its answers follow their reasoning as it comes back
        fill = self._fill(score_key)
        if not run.plan.is_cot:
            return self._score_batch(fill, offsets, [None] * len(offsets), affinity, SCORE_PRIORITY)
        recorded = self._recorded_reasoning.get(reason_key)
        if recorded is None:
            table = self.ctx.files.read_parquet(part_path(reason_key, run.plan.condition_index))
            recorded = self._recorded_reasoning[reason_key] = row_builder.reasoning_by_row(table)
        rows = fill.shard.rows
        reasonings = [recorded.get((rows[o].prompt.key, rows[o].sample)) for o in offsets]
        missing = [rows[o].prompt.key for o, r in zip(offsets, reasonings, strict=True) if r is None]
        if missing:
            raise ValueError(
                f"no reasoning recorded for {missing[0]} in {part_path(reason_key, run.plan.condition_index)}"
            )
        return self._score_batch(fill, offsets, reasonings, affinity, SCORE_PRIORITY)

    def _reason_batch(self, fill: ShardFill, offsets: list[int], affinity: tuple[str, int]) -> WorkBatch:
        cot, renderer, key = self.ctx.spec.cot, self.model.renderer, fill.shard.key
        batch = WorkBatch("generate", fill, offsets, [], affinity, REASON_PRIORITY)
        for offset in offsets:
            row = fill.shard.rows[offset]
            seed = reasoning_seed(
                self.ctx.spec.seed, self.model.spec.key, key.benchmark, key.condition, row.prompt.key, row.sample
            )
            batch.seeds.append(seed)
            batch.requests.append(
                GenerateRequest(
                    prompt=renderer.render(row.prompt.turns.reasoning_dialogue()),
                    max_new_tokens=cot.max_new_tokens,
                    temperature=cot.temperature,
                    top_p=cot.top_p,
                    stop=tuple(renderer.stop_strings),
                    seed=seed,
                )
            )
        return batch

    def _score_batch(
        self,
        fill: ShardFill,
        offsets: list[int],
        reasonings: list[Reasoning | None],
        affinity: tuple[str, int],
        priority: int,
    ) -> WorkBatch | None:
        """A score batch for these rows; a row whose reasoning failed becomes an error row at once."""
        batch = WorkBatch("score", fill, [], [], affinity, priority)
        renderer = self.model.renderer
        for offset, reasoning in zip(offsets, reasonings, strict=True):
            row = fill.shard.rows[offset]
            if reasoning is not None and reasoning.error is not None:
                prompt = renderer.render(row.prompt.turns.reasoning_dialogue())
                result = ScoreResult.failed(f"the reasoning could not be generated: {reasoning.error}")
                self._put(fill, offset, self._sample_row(row, prompt, result, reasoning), result)
                continue
            prompt = renderer.render(row.prompt.turns.answer_dialogue(reasoning.text if reasoning else None))
            batch.offsets.append(offset)
            batch.prompts.append(prompt)
            batch.reasonings.append(reasoning)
            batch.requests.append(ScoreRequest(prompt=prompt, continuations=flatten_forms(row.prompt.candidates)))
        self._maybe_commit(fill)
        return batch if batch.requests else None

    # -- results in --------------------------------------------------------------------------------
    def complete(self, batch: WorkBatch, results: list[Any]) -> None:
        """Take a finished batch's results: fill its shard, commit what is complete, queue CoT answers."""
        fill = batch.fill
        if batch.kind == "generate":
            self.outstanding[REASON] -= 1
            for offset, seed, result in zip(batch.offsets, batch.seeds, results, strict=True):
                self._put(fill, offset, (seed, result), result)
            self._maybe_commit(fill)  # before any answer of it can commit (see the module docstring)
            key = fill.shard.key
            score_key = ShardKey(key.model, key.benchmark, key.condition, SCORE, key.shard)
            if score_key not in self.done:
                reasonings: list[Reasoning | None] = [Reasoning(r.text, r.completion_tokens, r.error) for r in results]
                answers = self._score_batch(
                    self._fill(score_key), batch.offsets, reasonings, batch.affinity, ANSWER_PRIORITY
                )
                if answers is not None:
                    self._answers.append(answers)
            return
        self.outstanding[SCORE] -= 1
        for offset, prompt, reasoning, result in zip(
            batch.offsets, batch.prompts, batch.reasonings, results, strict=True
        ):
            self._put(fill, offset, self._sample_row(fill.shard.rows[offset], prompt, result, reasoning), result)
        self._maybe_commit(fill)

    def _put(self, fill: ShardFill, offset: int, value: Any, result: ScoreResult | GenerateResult) -> None:
        fill.put(offset, value, result)
        self.requests_done += 1
        self.remaining[fill.shard.key.phase] -= 1

    def _sample_row(self, row: Any, prompt: str, result: ScoreResult, reasoning: Reasoning | None) -> dict[str, Any]:
        return row_builder.sample_row(
            model=self.model.spec.key,
            model_labels=self.labels,
            row=row,
            prompt_text=prompt,
            result=result,
            reasoning=reasoning,
        )

    def _maybe_commit(self, fill: ShardFill) -> None:
        if fill.remaining:
            return
        shard = fill.shard
        if shard.key.phase == REASON:
            seeds, results = zip(*fill.values, strict=True) if fill.values else ((), ())
            table = row_builder.reasoning_table(shard.rows, list(seeds), list(results))
        else:
            table = row_builder.samples_table(fill.values, shard.plan.samples_schema)
            key = shard.key
            self._recorded_reasoning.pop(ShardKey(key.model, key.benchmark, key.condition, REASON, key.shard), None)
        relative = part_path(shard.key, shard.plan.condition_index)
        self.ctx.files.write_parquet(relative, table)
        self.ctx.store.finish_shard(
            self.ctx.job_id,
            shard.key,
            path=relative,
            tokens=fill.tokens,
            computed_tokens=fill.computed,
            errors=fill.errors,
        )
        self.done.add(shard.key)
        del self._fills[shard.key]
        self.ctx.on_commit()
