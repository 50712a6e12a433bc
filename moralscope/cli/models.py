"""``moralscope models``, ``moralscope score`` and ``moralscope generate``: one model, by hand.

``models prepare`` resolves a model (built-in, Hugging Face id or local folder) into the model cache;
``score`` and ``generate`` load one engine in-process and run a single prompt, taken literally (no
template is applied: render it yourself, e.g. with ``moralscope prompts``). torch/vLLM are imported
only when these commands run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from moralscope.cli.errors import print_json, run_command

if TYPE_CHECKING:
    from workers.engine import Engine

_DEFAULT_MODEL = "smollm2-135m-instruct"  # workers.models.DEFAULT_MODEL, without importing workers for --help
_CACHE_HELP = "Model cache root (default: $MORALSCOPE_CACHE_DIR, else ~/.cache/moralscope)."


@click.group()
def models() -> None:
    """Prepare models: built-in names, Hugging Face ids (org/name) or local folders."""


@models.command()
@click.argument("name", default=_DEFAULT_MODEL)
@click.option("--revision", help="Hugging Face revision (branch, tag or commit) of an org/name model.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help=_CACHE_HELP)
@click.option("--offline", is_flag=True, help="Use only what is already in the cache; never download.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved model as JSON.")
@run_command
def prepare(name: str, revision: str | None, cache_dir: Path | None, offline: bool, as_json: bool) -> None:
    """Resolve NAME (default: the embedded model), converting or downloading it into the cache.

    Prints the local folder that engines load, the fingerprint of its weights and, for Hugging Face
    models, the resolved commit.
    """
    from workers.models import resolve_model

    resolved = resolve_model(name, revision, cache_dir=cache_dir, download=not offline)
    if as_json:
        print_json(resolved)
        return
    click.echo(f"{resolved.name}: {resolved.path}")
    click.echo(f"  fingerprint: {resolved.fingerprint}")
    if resolved.revision:
        click.echo(f"  revision:    {resolved.revision}")


@models.command("list")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help=_CACHE_HELP)
@run_command
def list_models(cache_dir: Path | None) -> None:
    """Show the built-in models and the converted folders in the cache."""
    from schemas.paths import default_cache_dir
    from workers.models import BUILTIN_MODELS, MARKER_FILE

    for name, spec in BUILTIN_MODELS.items():
        click.echo(f"{name}  (built-in) {spec.description}")
    root = (cache_dir or default_cache_dir()) / "models"
    for marker in sorted(root.glob(f"*/{MARKER_FILE}")):
        click.echo(f"  prepared: {marker.parent}")


def _engine_options(function: Any) -> Any:
    """The options that load one engine, shared by ``score`` and ``generate``."""
    decorators = [
        click.option("--model", default=_DEFAULT_MODEL, show_default=True, help="Built-in name, org/name or folder."),
        click.option("--revision", help="Hugging Face revision of an org/name model."),
        click.option("--engine", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True),
        click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True),
        click.option("--device", help="torch device for the hf engine (default: cuda if available, else cpu)."),
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the hf engine."),
        click.option(
            "--prompt-format",
            type=click.Choice(["auto", "chat", "human_assistant"]),
            default="auto",
            show_default=True,
            help="Only decides special tokens: human_assistant adds the tokenizer's BOS, chat does not.",
        ),
        click.option("--prompt", required=True, help="The prompt text, used literally (no template)."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@contextmanager
def _loaded(model: str, revision: str | None, **settings: Any) -> Iterator[Engine]:
    """The engine for ``model``, closed afterwards; an engine error becomes the CLI's EngineFailure."""
    from schemas.errors import EngineFailure
    from schemas.inference import EngineConfig
    from workers.engine import EngineError, load_engine
    from workers.models import resolve_model

    resolved = resolve_model(model, revision)
    engine = load_engine(EngineConfig(model_path=resolved.path, **settings))
    try:
        yield engine
    except EngineError as exc:
        raise EngineFailure(str(exc)) from exc
    finally:
        engine.close()


def _served(error: str | None) -> None:
    """An engine's error result (a request it cannot serve) fails the command like an engine error."""
    if error is not None:
        from workers.engine import EngineError

        raise EngineError(error)


@click.command()
@_engine_options
@click.option("--candidate", "candidates", multiple=True, required=True, help="A continuation to score (repeatable).")
@run_command
def score(
    model: str,
    revision: str | None,
    engine: str,
    dtype: str,
    device: str | None,
    threads: int | None,
    prompt_format: str,
    prompt: str,
    candidates: tuple[str, ...],
) -> None:
    """Print (as JSON) each candidate's log-probability after PROMPT, with its tokens."""
    from schemas.inference import ScoreRequest

    with _loaded(
        model, revision, engine=engine, dtype=dtype, device=device, num_threads=threads, prompt_format=prompt_format
    ) as loaded:
        (result,) = loaded.score([ScoreRequest(prompt, candidates)])
        _served(result.error)
    tokenizer = loaded.renderer.tokenizer
    print_json(
        {
            "model": model,
            "engine": engine,
            "dtype": dtype,
            "prompt_format": loaded.renderer.prompt_format,
            "prompt_tokens": result.prompt_tokens,
            "candidates": [
                {
                    "text": text,
                    "logprob": item.logprob,
                    "probability": math.exp(item.logprob),
                    "token_ids": list(item.token_ids),
                    "tokens": [tokenizer.decode([i]) for i in item.token_ids],
                    "token_count": len(item.token_ids),
                }
                for text, item in zip(candidates, result.continuations, strict=True)
            ],
        }
    )


@click.command()
@_engine_options
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True, help="0 is greedy.")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stop", "stops", multiple=True, help="Stop before this string (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (text, token counts, finish reason).")
@run_command
def generate(
    model: str,
    revision: str | None,
    engine: str,
    dtype: str,
    device: str | None,
    threads: int | None,
    prompt_format: str,
    prompt: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    stops: tuple[str, ...],
    as_json: bool,
) -> None:
    """Sample a continuation of PROMPT (the same seed gives the same text)."""
    from schemas.inference import GenerateRequest

    request = GenerateRequest(prompt, max_tokens, temperature, top_p, stops, seed)
    with _loaded(
        model, revision, engine=engine, dtype=dtype, device=device, num_threads=threads, prompt_format=prompt_format
    ) as loaded:
        (result,) = loaded.generate([request])
        _served(result.error)
    if as_json:
        print_json(result)
    else:
        click.echo(result.text)
