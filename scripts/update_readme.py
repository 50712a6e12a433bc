"""Regenerate the README's generated section (the job spec reference): `make docs`.

:func:`with_block` replaces any marked block (``<!-- NAME:start -->`` … ``<!-- NAME:end -->``); the
quickstart results block is written the same way by ``scripts/readme_results.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from schemas.reference import job_spec_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def with_block(text: str, name: str, content: str) -> str:
    """``text`` with the block between the ``name`` markers replaced by ``content``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README} lacks the {start} … {end} markers")
    return pattern.sub(lambda _: f"{start}\n{content}{end}", text)


def with_reference(text: str) -> str:
    """The README text with the spec reference block regenerated."""
    return with_block(text, "spec-reference", job_spec_reference())


if __name__ == "__main__":
    README.write_text(with_reference(README.read_text()))
