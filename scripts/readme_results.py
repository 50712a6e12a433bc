"""Put a quickstart run's headline metrics into the README (between the quickstart-results markers).

    python scripts/readme_results.py moralscope-demo/results/JOB/metrics.parquet --note "who ran it, where, how long"

One row per condition; each cell is a value from metrics.parquet with its 95% interval (overall slice,
probability-weighted `expected` method; Winogender ρ with its Fisher-z interval). Nothing is typed in
by hand, so the table stays traceable to the run it came from.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import polars as pl
from update_readme import README, with_block  # this folder

from evals.benchmarks import builtin_benchmarks

# (column header, benchmark, metric, ci_method): the built-in benchmarks' headlines (Benchmark.headlines)
COLUMNS = [
    (headline.label, benchmark.name, headline.metric, headline.ci_method)
    for benchmark in builtin_benchmarks().values()
    for headline in benchmark.headlines
]


def cell(rows: pl.DataFrame) -> str:
    if rows.height == 0:
        return "–"
    row = rows.row(0, named=True)
    if math.isnan(row["ci_low"]):
        return f"{row['value']:+.3f}"
    return f"{row['value']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def headline_table(metrics: pl.DataFrame) -> str:
    """A Markdown table: conditions × headline metrics, for each model of the run."""
    overall = metrics.filter((pl.col("slice") == "overall") & (pl.col("method") == "expected"))
    lines = []
    for model in overall["model"].unique(maintain_order=True):
        lines += [f"**{model}**", "", "| condition | " + " | ".join(c[0] for c in COLUMNS) + " |"]
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        of_model = overall.filter(pl.col("model") == model)
        for condition in of_model["condition"].unique(maintain_order=True):
            cells = [
                cell(
                    of_model.filter(
                        (pl.col("condition") == condition)
                        & (pl.col("benchmark") == benchmark)
                        & (pl.col("metric") == metric)
                        & (pl.col("ci_method") == ci_method)
                    )
                )
                for _, benchmark, metric, ci_method in COLUMNS
            ]
            lines.append(f"| `{condition}` | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", type=Path, help="a job's metrics.parquet")
    parser.add_argument("--note", required=True, help="the run: machine, date, duration")
    args = parser.parse_args()
    table = headline_table(pl.read_parquet(args.metrics))
    README.write_text(with_block(README.read_text(), "quickstart-results", f"{args.note}\n\n{table}"))


if __name__ == "__main__":
    main()
