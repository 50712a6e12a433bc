"""`moralscope serve` and `moralscope run` argument handling (the full runs are in test_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from moralscope.cli import cli
from moralscope.cli.server import is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("10.0.0.5", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_interface_without_api_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MORALSCOPE_STORE_PATH", str(tmp_path / "jobs.sqlite3"))
    monkeypatch.delenv("MORALSCOPE_API_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in result.output
    assert not (tmp_path / "jobs.sqlite3").exists()  # refused before anything started


def test_serve_reports_an_unreadable_keys_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MORALSCOPE_API_KEYS_FILE", str(tmp_path / "missing-keys"))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert "cannot read MORALSCOPE_API_KEYS_FILE" in result.output


def test_run_rejects_an_invalid_spec_naming_the_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MORALSCOPE_STORE_PATH", str(tmp_path / "jobs.sqlite3"))
    spec = tmp_path / "bad.yaml"
    spec.write_text("models:\n  - name: smollm2-135m-instruct\n    dtype: float64\n")
    result = CliRunner().invoke(cli, ["run", str(spec)])
    assert result.exit_code == 1
    assert "models.0.dtype" in result.output
