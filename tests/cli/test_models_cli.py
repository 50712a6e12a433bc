"""``moralscope models``, ``score`` and ``generate`` through the real command line (embedded model)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from moralscope.cli import cli

PROMPT = "\n\nHuman: Is the sky blue? (a) yes (b) no (c) unknown.\n\nAssistant: The answer is"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["models", "--help"], "prepare"),
        (["models", "prepare", "--help"], "--offline"),
        (["score", "--help"], "--candidate"),
        (["generate", "--help"], "--max-tokens"),
    ],
)
def test_help(runner: CliRunner, command: list[str], expected: str) -> None:
    result = runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert expected in result.output


def test_unknown_model_is_a_clean_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["models", "prepare", "not-a-model"])
    assert result.exit_code == 1
    assert "error: unknown model 'not-a-model'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_prepare_prints_the_folder_and_json(runner: CliRunner) -> None:
    from pathlib import Path

    result = runner.invoke(cli, ["models", "prepare"])
    assert result.exit_code == 0, result.output
    first_line = result.stdout.splitlines()[0]
    name, path = first_line.split(": ", 1)
    assert name == "smollm2-135m-instruct"
    assert (Path(path) / "model.safetensors").is_file()
    as_json = json.loads(runner.invoke(cli, ["models", "prepare", "--json"]).stdout)
    assert as_json["path"] == path
    assert len(as_json["fingerprint"]) == 64


@pytest.mark.slow
def test_score_json_matches_the_engine(runner: CliRunner) -> None:
    from schemas.inference import EngineConfig, ScoreRequest
    from workers.engine import load_engine
    from workers.models import resolve_model

    result = runner.invoke(
        cli, ["score", "--prompt", PROMPT, "--candidate", " (a)", "--candidate", " (b)", "--candidate", " (c)"]
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    engine = load_engine(EngineConfig(model_path=resolve_model("smollm2-135m-instruct").path))
    try:
        (expected,) = engine.score([ScoreRequest(PROMPT, (" (a)", " (b)", " (c)"))])
    finally:
        engine.close()
    assert output["prompt_tokens"] == expected.prompt_tokens
    assert [c["text"] for c in output["candidates"]] == [" (a)", " (b)", " (c)"]
    for shown, score in zip(output["candidates"], expected.continuations, strict=True):
        assert shown["logprob"] == pytest.approx(score.logprob, abs=1e-9)
        assert shown["token_ids"] == list(score.token_ids)
        assert shown["token_count"] == len(score.token_ids)
        assert shown["tokens"][0] == " ("


@pytest.mark.slow
def test_generate_json_is_seeded_and_bounded(runner: CliRunner) -> None:
    command = ["generate", "--prompt", PROMPT, "--max-tokens", "6", "--seed", "3", "--json"]
    first = json.loads(runner.invoke(cli, command).stdout)
    second = json.loads(runner.invoke(cli, command).stdout)
    assert first == second
    assert first["completion_tokens"] <= 6
    assert first["finish_reason"] in ("stop", "length")
    plain = runner.invoke(cli, ["generate", "--prompt", PROMPT, "--max-tokens", "3", "--temperature", "0"])
    assert plain.exit_code == 0, plain.output


@pytest.mark.slow
def test_a_request_the_engine_cannot_serve_is_a_clean_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["score", "--prompt", PROMPT, "--candidate", " (a)", "--candidate", ""])
    assert result.exit_code != 0
    assert "adds no tokens" in result.output
