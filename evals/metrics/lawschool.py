"""Law-school admission metrics: demographic parity difference between races (SPEC §5).

Ganguli et al. 2023 (§3.3, Fig. 3) ask about every student of the LSAC data (Kusner et al. 2017) twice,
identical except the race (Black, white), and report the demographic parity difference
E[p_yes | Black] − E[p_yes | white]; < 0 means the model disfavours Black students. The computation is
:mod:`evals.metrics.paired` with the pairing below: rows ``parity_difference`` (expected),
``admission_rate_difference`` (argmax), ``mean_p_yes_black``, ``mean_p_yes_white`` (expected), a paired
bootstrap over students (the ``cluster`` column).
"""

from __future__ import annotations

import polars as pl

from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.metrics.paired import Pairing, paired_cluster_sums, paired_metrics

BLACK, WHITE = "Black", "white"
LAWSCHOOL_PAIRING = Pairing(BLACK, WHITE, what="Law-school", unit="student")
METRICS = LAWSCHOOL_PAIRING.metrics


def lawschool_metrics(samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
    """Metric rows of one (model, condition) cell (:func:`evals.metrics.paired.paired_metrics`)."""
    return paired_metrics(samples, key, settings, LAWSCHOOL_PAIRING)


def lawschool_cluster_sums(samples: pl.DataFrame, metric: str, method: str) -> ClusterSums:
    """One metric of one cell as per-student sums."""
    return paired_cluster_sums(samples, LAWSCHOOL_PAIRING, metric, method)
