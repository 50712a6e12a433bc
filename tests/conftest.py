"""Shared test setup: the real upstream datasets and a quiet local Ray.

``MORALSCOPE_DATA_DIR`` points at ``../shared/datasets`` (next to the repository) unless it is already
set; the data is read in place, never copied into the project.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = (Path(__file__).parents[1] / "../shared/datasets").resolve()

# pytest puts tests/ on sys.path for this conftest; tests/evals and tests/workers would then shadow
# the real packages as namespace packages, so the repository root goes first.
if sys.path[0] != str(REPO_ROOT):
    sys.path.insert(0, str(REPO_ROOT))

# OpenMP threads spin while they wait by default; when other processes share the cores (the server,
# Ray, CI runners) that makes torch over 10x slower. libgomp reads this when torch loads it, so it is
# set at import, before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_ENVIRONMENT = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    """Set MORALSCOPE_DATA_DIR (to the shared datasets) and the Ray variables, unless already set."""
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("MORALSCOPE_DATA_DIR"):
            patch.setenv("MORALSCOPE_DATA_DIR", str(SHARED_DATASETS))
        for name, value in _ENVIRONMENT.items():
            if name not in os.environ:
                patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding the real datasets (``bbq/``, ``winogender/``, ``lawschool/``)."""
    path = Path(os.environ.get("MORALSCOPE_DATA_DIR") or SHARED_DATASETS)
    if not (path / "winogender" / "templates.tsv").is_file():
        pytest.fail(f"the datasets are not at {path}; set MORALSCOPE_DATA_DIR to the shared datasets folder")
    return path


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that, on ``sys.path``, holds an installed plugin benchmark (``coinflip``).

    It has the module (tests/plugins/moralscope_coinflip.py) and a ``*.dist-info`` whose
    ``entry_points.txt`` declares it in the ``moralscope.benchmarks`` group: what ``pip install`` of a
    package with that entry point leaves on disk. Put it on ``sys.path`` (and call
    ``evals.benchmarks.reload_plugins()``), or on ``PYTHONPATH`` of a subprocess.
    """
    folder = tmp_path_factory.mktemp("plugins")
    shutil.copy(REPO_ROOT / "tests" / "plugins" / "moralscope_coinflip.py", folder)
    info = folder / "moralscope_coinflip-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: moralscope-coinflip\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[moralscope.benchmarks]\ncoinflip = moralscope_coinflip:BENCHMARK\n")
    return folder
