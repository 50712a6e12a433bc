"""The registry of every upstream dataset file: URL pinned to a commit, sha256, rows, license, citation.

Loaded from the package file ``evals/registry.json``; keys are paths relative to a data directory
(the layout of ``shared/datasets``), e.g. ``bbq/data/Age.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from schemas.errors import InvalidInputError
from schemas.spec import BBQ_CATEGORIES


@dataclass(frozen=True, slots=True)
class DatasetFile:
    """One upstream file, pinned (an entry of ``evals/registry.json``)."""

    key: str
    """Path relative to a data directory, e.g. ``bbq/data/Age.jsonl``."""
    dataset: str
    """``bbq``, ``winogender`` or ``lawschool``."""
    url: str
    """Raw download URL pinned to an upstream commit."""
    sha256: str
    rows: int
    """Data rows (jsonl lines; csv/tsv lines after the header)."""
    license: str
    citation: str
    size: int | None = None
    """Bytes, where known."""


def _load_registry() -> dict[str, DatasetFile]:
    registry = json.loads(resources.files("evals").joinpath("registry.json").read_text(encoding="utf-8"))
    datasets = registry["datasets"]
    return {
        entry["key"]: DatasetFile(
            key=entry["key"],
            dataset=entry["dataset"],
            url=entry["url"],
            sha256=entry["sha256"],
            rows=entry["rows"],
            license=datasets[entry["dataset"]]["license"],
            citation=datasets[entry["dataset"]]["citation"],
            size=entry.get("bytes"),
        )
        for entry in registry["files"]
    }


DATASET_FILES: dict[str, DatasetFile] = _load_registry()
"""Every upstream file, by key (path relative to a data directory)."""

DATASETS: tuple[str, ...] = ("bbq", "winogender", "lawschool")


def bbq_key(category: str) -> str:
    """The registry key of a BBQ category file."""
    if category not in BBQ_CATEGORIES:
        raise InvalidInputError(
            f"unknown BBQ category {category!r}; known categories: {', '.join(BBQ_CATEGORIES)}", field="categories"
        )
    return f"bbq/data/{category}.jsonl"


def select_keys(name: str | None) -> list[str]:
    """Registry keys named by ``name``: a key, a dataset (``bbq``), a BBQ category (``Age``), or None for all."""
    if name is None:
        return list(DATASET_FILES)
    if name in DATASET_FILES:
        return [name]
    if name in DATASETS:
        return [key for key, f in DATASET_FILES.items() if f.dataset == name]
    by_lower = {c.lower(): c for c in BBQ_CATEGORIES}
    if name.lower() in by_lower:
        return [bbq_key(by_lower[name.lower()])]
    raise InvalidInputError(
        f"unknown dataset name {name!r}: use a dataset ({', '.join(DATASETS)}), a BBQ category "
        f"({', '.join(BBQ_CATEGORIES)}) or a file key ({', '.join(DATASET_FILES)})",
        field="only",
    )
