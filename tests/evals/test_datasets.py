"""Dataset sources: the registry, resolution order, sha256 verification, errors and downloads.

Downloads are tested against a real HTTP server on 127.0.0.1 used as the mirror (GitHub is not
reachable from CI): a good file, a corrupt file and a 404.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evals.bbq import read_category
from evals.datasets import (
    DATASET_FILES,
    DatasetChecksumError,
    DatasetDownloadError,
    DatasetFormatError,
    DatasetMissingError,
    DatasetSources,
    file_sha256,
    iter_jsonl,
    select_keys,
)
from evals.datasets.download import LOCKS
from schemas.errors import DataError, InvalidInputError
from schemas.spec import BBQ_CATEGORIES

SMALL_KEY = "winogender/occupations-stats.tsv"
LOCAL_BBQ = ("Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation")


@dataclass
class Mirror:
    """A real HTTP server on 127.0.0.1 serving ``root``, which logs every GET, can fail the first requests
    of a path with a status (``fail``) and can answer slowly (``delay`` seconds)."""

    url: str
    root: Path
    gets: list[str] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)
    delay: float = 0.0


def _handler(mirror: Mirror) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(mirror.root), **kwargs)

        def do_GET(self) -> None:
            mirror.gets.append(self.path)
            time.sleep(mirror.delay)
            if planned := mirror.fail.get(self.path):
                self.send_error(planned.pop(0))
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    root.mkdir()
    served = Mirror("", root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def place(data_dir: Path, root: Path, key: str, content: bytes | None = None) -> Path:
    """Copy the real file ``key`` (or write ``content``) under ``root``."""
    target = root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        shutil.copyfile(data_dir / key, target)
    else:
        target.write_bytes(content)
    return target


def leftovers(folder: Path) -> list[Path]:
    """Files under ``folder`` other than the lock files (which stay: removing one races a waiting process)."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and LOCKS not in p.relative_to(folder).parts]


# -- registry ----------------------------------------------------------------------------------------


def test_registry_has_every_upstream_file_pinned() -> None:
    expected = {f"bbq/data/{c}.jsonl" for c in BBQ_CATEGORIES} | {
        "winogender/templates.tsv",
        "winogender/occupations-stats.tsv",
        "lawschool/law_data.csv",
    }
    assert set(DATASET_FILES) == expected
    assert sum(f.rows for f in DATASET_FILES.values() if f.dataset == "bbq") == 58_492  # SPEC §3
    for entry in DATASET_FILES.values():
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+", entry.url), entry
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.license
        assert entry.citation


def test_registry_matches_the_provenance_files(data_dir: Path) -> None:
    """Every pinned sha256 appears in its dataset's PROVENANCE.md on a table row with its row count."""
    for entry in DATASET_FILES.values():
        provenance = (data_dir / entry.dataset / "PROVENANCE.md").read_text(encoding="utf-8")
        rows = [line for line in provenance.splitlines() if entry.sha256 in line]
        assert len(rows) == 1, f"{entry.key}: sha256 not (uniquely) in PROVENANCE.md"
        cells = [cell.strip() for cell in rows[0].split("|")]
        assert str(entry.rows) in cells, f"{entry.key}: row count {entry.rows} not on {rows[0]}"
        assert entry.key.split("/", 1)[1] in rows[0]


def test_the_shared_files_are_intact(data_dir: Path) -> None:
    status = {row.key: row for row in DatasetSources(data_dir, cache_dir=data_dir / "no-cache").status()}
    present = [f"bbq/data/{c}.jsonl" for c in LOCAL_BBQ] + [
        "winogender/templates.tsv",
        "winogender/occupations-stats.tsv",
        "lawschool/law_data.csv",
    ]
    for key in present:
        assert status[key].state == "ok", status[key]
        assert status[key].sha256_ok is True
    assert {row.state for row in status.values()} <= {"ok", "missing"}


def test_select_keys_by_key_dataset_or_category() -> None:
    assert len(select_keys(None)) == 14
    assert len(select_keys("bbq")) == 11
    assert select_keys("winogender") == ["winogender/templates.tsv", "winogender/occupations-stats.tsv"]
    assert select_keys("Race_x_SES") == ["bbq/data/Race_x_SES.jsonl"]
    assert select_keys("race_x_ses") == ["bbq/data/Race_x_SES.jsonl"]
    assert select_keys("lawschool/law_data.csv") == ["lawschool/law_data.csv"]
    with pytest.raises(InvalidInputError, match=r"unknown dataset name 'Foo'.*bbq, winogender, lawschool"):
        select_keys("Foo")


# -- resolution order and verification ---------------------------------------------------------------


def test_resolution_order(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    for root in (explicit, env, cache):
        place(data_dir, root, SMALL_KEY)
    monkeypatch.setenv("MORALSCOPE_DATA_DIR", str(env))
    assert DatasetSources(explicit, cache_dir=cache, download=False).path(SMALL_KEY) == explicit / SMALL_KEY
    assert DatasetSources(tmp_path / "empty", cache_dir=cache, download=False).path(SMALL_KEY) == env / SMALL_KEY
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    assert DatasetSources(None, cache_dir=cache, download=False).path(SMALL_KEY) == cache / SMALL_KEY
    monkeypatch.setenv("MORALSCOPE_CACHE_DIR", str(tmp_path / "home-cache"))
    assert DatasetSources().cache_dir == tmp_path / "home-cache" / "datasets"


def test_missing_file_names_every_place_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORALSCOPE_DATA_DIR", str(tmp_path / "env"))
    sources = DatasetSources(tmp_path / "explicit", cache_dir=tmp_path / "cache", download=False)
    with pytest.raises(DatasetMissingError) as caught:
        sources.path("bbq/data/SES.jsonl")
    message = caught.value.message
    for place_looked in ("explicit", "env", "cache"):
        assert str(tmp_path / place_looked / "bbq/data/SES.jsonl") in message
    assert "moralscope data pull --only bbq/data/SES.jsonl" in message
    assert "MORALSCOPE_DATA_DIR" in message
    assert isinstance(caught.value, DataError)


def test_wrong_sha256_names_file_hashes_and_fix(data_dir: Path, tmp_path: Path) -> None:
    original = (data_dir / SMALL_KEY).read_bytes()
    corrupt = place(data_dir, tmp_path / "d", SMALL_KEY, original.replace(b"89.58", b"89.59"))
    sources = DatasetSources(tmp_path / "d", cache_dir=tmp_path / "cache", download=False)
    with pytest.raises(DatasetChecksumError) as caught:
        sources.path(SMALL_KEY)
    message = caught.value.message
    assert str(corrupt) in message
    assert DATASET_FILES[SMALL_KEY].sha256 in message
    assert hashlib.sha256(corrupt.read_bytes()).hexdigest() in message
    assert f"moralscope data pull --only {SMALL_KEY}" in message


def test_a_corrupt_copy_is_an_error_even_when_a_good_one_exists_elsewhere(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(data_dir, tmp_path / "d", SMALL_KEY, b"occupation\tbls_pct_female\n")
    monkeypatch.setenv("MORALSCOPE_DATA_DIR", str(data_dir))
    with pytest.raises(DatasetChecksumError):
        DatasetSources(tmp_path / "d", cache_dir=tmp_path / "cache").path(SMALL_KEY)
    (state,) = DatasetSources(tmp_path / "d", cache_dir=tmp_path / "cache").status(SMALL_KEY)
    assert (state.state, state.where, state.sha256_ok) == ("corrupt", "data_dir", False)


def test_verification_is_cached_by_path_size_and_mtime(data_dir: Path, tmp_path: Path) -> None:
    path = place(data_dir, tmp_path, SMALL_KEY)
    good = file_sha256(path)
    stat = path.stat()
    content = path.read_bytes()
    path.write_bytes(content.replace(b"89.58", b"89.59"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_sha256(path) == good  # (path, size, mtime) unchanged: not hashed again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_sha256(path) != good


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Age.jsonl"
    path.write_text('{"example_id": 0}\n{"example_id": 1,\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=rf"{re.escape(str(path))}:2: not valid JSON"):
        list(iter_jsonl(path))
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r":1: expected a JSON object, got list"):
        list(iter_jsonl(path))


def test_bbq_row_problems_name_file_line_and_field(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "bbq/data/Age.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    bad = tmp_path / "Age.jsonl"
    bad.write_text("\n".join([lines[0], lines[1].replace('"unknown"]', '"old"]'), lines[2]]) + "\n", encoding="utf-8")
    with pytest.raises(
        DatasetFormatError, match=r"Age\.jsonl:2: exactly one answer_info tag must be 'unknown', found 0"
    ):
        read_category(bad, "Age")
    bad.write_text(lines[0].replace('"label": 2', '"label": 7') + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"Age\.jsonl:1: label must be 0, 1 or 2, got 7"):
        read_category(bad, "Age")
    bad.write_text(lines[0].replace('"context": ', '"kontext": ') + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"Age\.jsonl:1: missing field 'context'"):
        read_category(bad, "Age")


# -- downloads from a local mirror -------------------------------------------------------------------


def test_download_from_mirror_verifies_and_caches(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror.url, mirror.root
    place(data_dir, root, SMALL_KEY)
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    cache = tmp_path / "cache"
    sources = DatasetSources(cache_dir=cache, mirror_url=url + "/")
    assert sources.url_for(SMALL_KEY) == f"{url}/{SMALL_KEY}"
    path = sources.path(SMALL_KEY)
    assert path == cache / SMALL_KEY
    assert path.read_bytes() == (data_dir / SMALL_KEY).read_bytes()
    assert leftovers(cache) == [path]  # no temporary file left behind
    (state,) = sources.status(SMALL_KEY)
    assert (state.state, state.where) == ("ok", "cache")


def test_mirror_from_the_environment(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror.url, mirror.root
    place(data_dir, root, SMALL_KEY)
    monkeypatch.setenv("MORALSCOPE_DATASET_MIRROR", url)
    sources = DatasetSources(tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert sources.url_for(SMALL_KEY) == f"{url}/{SMALL_KEY}"
    results = sources.pull(SMALL_KEY, tmp_path / "dest")
    assert [(r.key, r.action) for r in results] == [(SMALL_KEY, "downloaded")]
    assert (tmp_path / "dest" / SMALL_KEY).read_bytes() == (data_dir / SMALL_KEY).read_bytes()
    again = sources.pull(SMALL_KEY, tmp_path / "dest")
    assert [r.action for r in again] == ["present"]


def test_corrupt_download_keeps_nothing(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror.url, mirror.root
    bad = place(data_dir, root, SMALL_KEY, (data_dir / SMALL_KEY).read_bytes() + b"extra\n")
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    cache = tmp_path / "cache"
    sources = DatasetSources(cache_dir=cache, mirror_url=url, download_retries=1)
    with pytest.raises(DatasetMissingError) as caught:
        sources.path(SMALL_KEY)
    message = caught.value.message
    received = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert f"its sha256 is {received}, expected {DATASET_FILES[SMALL_KEY].sha256}" in message
    assert f"{url}/{SMALL_KEY}" in message
    assert "nothing was kept" in message
    assert isinstance(caught.value.__cause__, DatasetDownloadError)
    assert leftovers(cache) == []
    assert mirror.gets == [f"/{SMALL_KEY}"] * 2  # a mismatch may be a broken transfer: tried once more


def test_a_failed_download_is_tried_again_but_a_refused_one_is_not(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(data_dir, mirror.root, SMALL_KEY)
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    mirror.fail[f"/{SMALL_KEY}"] = [503]  # once: pooch waits 1 s and tries again
    sources = DatasetSources(cache_dir=tmp_path / "cache", mirror_url=mirror.url)
    assert sources.path(SMALL_KEY).read_bytes() == (data_dir / SMALL_KEY).read_bytes()
    assert mirror.gets == [f"/{SMALL_KEY}"] * 2
    with pytest.raises(DatasetMissingError, match="HTTP 404"):
        sources.path("winogender/templates.tsv")  # not on the mirror
    assert mirror.gets.count("/winogender/templates.tsv") == 1


def test_two_processes_fetching_one_file_download_it_once(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(data_dir, mirror.root, SMALL_KEY)
    mirror.delay = 2.0  # the first download is still running when the second process asks
    cache = tmp_path / "cache"
    code = (
        "import sys; from evals.datasets import DatasetSources; "
        "print(DatasetSources(cache_dir=sys.argv[1], mirror_url=sys.argv[2]).path(sys.argv[3]))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("MORALSCOPE_DATA_DIR", None)
    command = [sys.executable, "-c", code, str(cache), mirror.url, SMALL_KEY]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert out.decode().strip() == str(cache / SMALL_KEY)
    assert mirror.gets == [f"/{SMALL_KEY}"]  # one download; the other process waited, then found it
    assert (cache / SMALL_KEY).read_bytes() == (data_dir / SMALL_KEY).read_bytes()
    assert leftovers(cache) == [cache / SMALL_KEY]


def test_download_404_and_pull_reports_every_failure(
    data_dir: Path, tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror.url, mirror.root
    place(data_dir, root, SMALL_KEY)  # templates.tsv is not on the mirror
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    sources = DatasetSources(cache_dir=tmp_path / "cache", mirror_url=url)
    with pytest.raises(DatasetMissingError, match=rf"{re.escape(url)}/winogender/templates\.tsv failed: HTTP 404"):
        sources.path("winogender/templates.tsv")
    results = {r.key: r for r in sources.pull("winogender", strict=False)}
    assert results[SMALL_KEY].action == "downloaded"
    assert results["winogender/templates.tsv"].action == "failed"
    assert "HTTP 404" in (results["winogender/templates.tsv"].error or "")
    with pytest.raises(DatasetDownloadError, match=r"1 of 2 dataset files could not be pulled"):
        sources.pull("winogender")
    assert leftovers(tmp_path / "cache") == [tmp_path / "cache" / SMALL_KEY]


def test_downloads_can_be_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MORALSCOPE_DATA_DIR")
    with pytest.raises(DatasetMissingError, match="downloads are disabled"):
        DatasetSources(cache_dir=tmp_path, download=False, mirror_url="http://127.0.0.1:9").path(SMALL_KEY)
