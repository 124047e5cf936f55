"""Out-of-sample signal metrics: information coefficient, rank IC, hit rate."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def information_coefficient(score: np.ndarray, forward_return: np.ndarray) -> float:
    """Pearson correlation of score and forward return (0.0 when either is constant)."""
    if len(score) < 2 or np.std(score) == 0 or np.std(forward_return) == 0:
        return 0.0
    return float(np.corrcoef(score, forward_return)[0, 1])


def rank_ic(score: np.ndarray, forward_return: np.ndarray) -> float:
    """Spearman correlation: the IC of the ranks (ties get their average rank)."""
    return information_coefficient(rankdata(score), rankdata(forward_return))


def hit_rate(prob_up: np.ndarray, forward_return: np.ndarray) -> float:
    """Share of rows with a non-zero forward return whose sign the model called (``p > 0.5`` = up)."""
    moved = forward_return != 0
    if not moved.any():
        return float("nan")
    return float(((prob_up[moved] > 0.5) == (forward_return[moved] > 0)).mean())
