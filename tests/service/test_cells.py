"""Failed cells: the error share per model × benchmark × condition against max_error_rate (pure polars)."""

from __future__ import annotations

import polars as pl

from service.runner.cells import failed_cells, without_failed_cells


def _samples() -> pl.DataFrame:
    rows = []
    for condition, errors in (("Q", 0), ("Q+IF", 1), ("Long", 4)):
        for i in range(4):  # 4 rows per cell
            error = f"request {i}: {8000 + i} prompt tokens exceed the model's 8192 positions" if i < errors else None
            rows.append(("m", "lawschool", condition, str(i // 2), "Black" if i % 2 else "white", 0, error))
    return pl.DataFrame(
        rows, schema=["model", "benchmark", "condition", "item_id", "variant", "sample", "error"], orient="row"
    )


def test_a_cell_above_the_rate_fails_with_its_most_common_cause_and_examples() -> None:
    samples = _samples()
    (cell,) = failed_cells(samples, max_error_rate=0.25)  # Q+IF: 1 of 4 is not above 0.25
    assert (cell.condition, cell.rows, cell.errors, cell.error_rate) == ("Long", 4, 4, 1.0)
    assert cell.cause == "request 0: 8000 prompt tokens exceed the model's 8192 positions"  # numbers vary: one cause
    assert [(e.item_id, e.variant) for e in cell.examples] == [("0", "white"), ("0", "Black"), ("1", "white")]
    kept = without_failed_cells(samples, [cell])
    assert kept.get_column("condition").unique(maintain_order=True).to_list() == ["Q", "Q+IF"]
    assert [c.condition for c in failed_cells(samples, max_error_rate=0.0)] == ["Q+IF", "Long"]
    assert failed_cells(samples, max_error_rate=1.0) == []
