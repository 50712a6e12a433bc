"""Regenerate the README's generated section (the job spec reference): `make docs`."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.reference import job_spec_reference

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- spec-reference:start -->", "<!-- spec-reference:end -->"


def with_reference(text: str) -> str:
    """The README text with the spec reference block regenerated."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README} lacks the {START} … {END} markers")
    return pattern.sub(lambda _: f"{START}\n{job_spec_reference()}{END}", text)


if __name__ == "__main__":
    README.write_text(with_reference(README.read_text()))
