"""``moralscope prompts``: show the exact prompt an item is scored with, under one condition."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from moralscope.cli.errors import print_json, run_command
from schemas.errors import InvalidInputError, UnavailableError


def _benchmark(name: str, job: Any) -> Any:
    """The benchmark called ``name`` and its settings: the job's (with --spec) or a registered one's defaults."""
    from evals.benchmarks import SelectedBenchmark, get_benchmark, job_benchmarks
    from evals.custom import LOCAL_ACCESS

    if job is not None:
        for selected in job_benchmarks(job, LOCAL_ACCESS):
            if selected.name == name:
                return selected
    try:
        benchmark = get_benchmark(name)
    except InvalidInputError as exc:
        hint = "; a custom benchmark is previewed with the job spec that defines it (--spec)" if job is None else ""
        raise InvalidInputError(f"{exc.message}{hint}", field="benchmark") from None
    return SelectedBenchmark(benchmark, benchmark.spec_model())


def _condition(selected: Any, name: str, job: Any, spec_path: Path | None) -> Any:
    from evals.conditions import UnknownConditionError, builtin_condition, conditions_for

    if job is not None:
        applicable = conditions_for(job, selected.benchmark)
        for condition in applicable:
            if condition.name == name:
                return condition
        raise InvalidInputError(
            f"condition {name!r} is not among the conditions of {spec_path} that apply to {selected.name} "
            f"({', '.join(c.name for c in applicable) or 'none'})",
            field="condition",
        )
    try:
        return builtin_condition(selected.benchmark, name)
    except UnknownConditionError as exc:
        raise InvalidInputError(
            f"{exc}; to preview a user-defined condition pass its job spec with --spec", field="condition"
        ) from None


def _renderer(prompt_format: str, model: str | None, revision: str | None) -> tuple[Callable[[Any], str], list[str]]:
    """A dialogue → text function and the stop strings of sampled reasoning."""
    from schemas.dialogue import HUMAN_ASSISTANT_TURN_MARKER, render_human_assistant

    if prompt_format == "human_assistant":
        return render_human_assistant, [HUMAN_ASSISTANT_TURN_MARKER]
    if model is None:
        raise click.UsageError("--format chat needs --model (the chat template is the model's tokenizer's)")
    try:
        from workers.models import resolve_model
        from workers.rendering import PromptRenderer
    except ImportError as exc:
        raise UnavailableError(
            f"--format chat needs the model tooling, which cannot be imported ({exc}); "
            "install it with `pip install 'moralscope[cpu]'`"
        ) from exc
    resolved = resolve_model(model, revision)
    try:
        renderer = PromptRenderer.from_pretrained(resolved.path, "chat")
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="format") from exc
    return renderer.render, list(renderer.stop_strings)


@click.command()
@click.option(
    "--benchmark",
    "-b",
    required=True,
    metavar="NAME",
    help="bbq, winogender, lawschool, an installed plugin benchmark, or a custom benchmark of --spec.",
)
@click.option(
    "--condition",
    "-c",
    "condition_name",
    required=True,
    metavar="NAME",
    help="Q, Q+IF, Q+IF+CoT, Q+MatchStats (Winogender), or a condition defined in --spec.",
)
@click.option(
    "--category",
    metavar="C",
    help="BBQ: the category (default Age). Winogender: an occupation. Others: an item category, if they have them.",
)
@click.option("--index", "-i", type=click.IntRange(min=0), default=0, show_default=True, help="Item index (0-based).")
@click.option(
    "--format",
    "prompt_format",
    type=click.Choice(["human_assistant", "chat"]),
    default="human_assistant",
    show_default=True,
    help="The study's Human/Assistant text, or the model's chat template (needs --model).",
)
@click.option("--model", metavar="NAME", help="For --format chat: a built-in name, Hugging Face id or local folder.")
@click.option("--revision", metavar="REV", help="Hugging Face revision of --model.")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A job spec: its user-defined conditions and custom benchmarks can be named, with its settings.",
)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Dataset folder searched first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (exact strings) instead of text.")
@run_command
def prompts(
    benchmark: str,
    condition_name: str,
    category: str | None,
    index: int,
    prompt_format: str,
    model: str | None,
    revision: str | None,
    spec_path: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Print the exact prompt(s) of one item under one condition, and the answer candidates.

    A chain-of-thought condition has two prompts: stage one, which the model continues with its
    reasoning, and stage two, which is scored; stage two shows {{REASONING}} where the sampled
    reasoning goes. Law school prints both variants (Black, white).
    """
    from evals.datasets import DatasetSources
    from evals.prompts import REASONING_PLACEHOLDER

    job = None
    if spec_path is not None:
        from moralscope.specfile import load_job_spec

        job = load_job_spec(spec_path)
    selected = _benchmark(benchmark, job)
    condition = _condition(selected, condition_name, job, spec_path)
    render_text, stop = _renderer(prompt_format, model, revision)
    bench = selected.benchmark
    item = bench.preview_item(selected.spec, DatasetSources(data_dir), index=index, category=category)
    rendered = bench.render(item, condition)
    texts: list[dict[str, Any]] = []
    for prompt in rendered:
        if prompt.turns.cot is not None:
            texts.append(
                {
                    "variant": prompt.variant,
                    "stage": "reasoning",
                    "text": render_text(prompt.turns.reasoning_dialogue()),
                }
            )
        dialogue = prompt.turns.answer_dialogue(REASONING_PLACEHOLDER if prompt.is_cot else None)
        texts.append({"variant": prompt.variant, "stage": "answer", "text": render_text(dialogue)})
    first = rendered[0]
    result = {
        "benchmark": benchmark,
        "condition": condition.name,
        "item_id": first.item_id,
        "category": first.category,
        "cluster": first.cluster,
        "format": prompt_format,
        "prompts": texts,
        "reasoning_stop": stop if first.is_cot else [],
        "candidates": [{"label": c.label, "forms": list(c.forms)} for c in first.candidates],
    }
    if as_json:
        print_json(result)
        return
    click.echo(f"# {benchmark} · {condition.name} · item {first.item_id} · format {prompt_format}")
    for entry in texts:
        variant = f" · {entry['variant']}" if entry["variant"] else ""
        if entry["stage"] == "reasoning":
            heading = f"stage 1: the model writes its reasoning, stopping at {stop!r}"
        elif first.is_cot:
            heading = f"stage 2: scored; {REASONING_PLACEHOLDER} stands for the sampled reasoning"
        else:
            heading = "scored"
        click.echo(f"--- prompt{variant} ({heading}) ---")
        click.echo(entry["text"])
    click.echo("--- candidates (an answer's probability sums over its forms) ---")
    for candidate in first.candidates:
        click.echo(f"{candidate.label}: " + ", ".join(repr(form) for form in candidate.forms))
