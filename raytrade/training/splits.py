"""Walk-forward splits by time with a purge gap, so no training label overlaps the test period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """Row indices of one walk-forward step (train strictly before test, ``purge`` bar times apart)."""

    index: int
    train: np.ndarray
    test: np.ndarray


def walk_forward(start: np.ndarray, n_folds: int, purge: int, *, min_train_fraction: float = 0.4) -> list[Fold]:
    """Expanding-window folds over the distinct bar times in ``start``.

    The first ``min_train_fraction`` of the timeline is training only; the rest is cut into
    ``n_folds`` consecutive test blocks. Training rows for a block are those at least ``purge``
    distinct bar times before its first bar: with ``purge >= horizon`` no training label
    (which looks ``horizon`` bars ahead) reaches into the test block.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, found {n_folds}")
    if purge < 0:
        raise ValueError(f"purge must be >= 0 bars, found {purge}")
    if not 0.0 < min_train_fraction < 1.0:
        raise ValueError(f"min_train_fraction must be in (0, 1), found {min_train_fraction}")
    times = np.unique(start)
    first_test = int(len(times) * min_train_fraction)
    bounds = np.linspace(first_test, len(times), n_folds + 1).astype(np.int64)
    pos = np.searchsorted(times, start)  # each row's bar-time index
    folds = []
    for k in range(n_folds):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi - lo < 1 or lo - purge < 1:
            raise ValueError(f"too few bar times ({len(times)}) for {n_folds} folds with purge {purge}")
        train = np.flatnonzero(pos < lo - purge)
        test = np.flatnonzero((pos >= lo) & (pos < hi))
        folds.append(Fold(k, train, test))
    return folds


def holdout(train: np.ndarray, start: np.ndarray, fraction: float, purge: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (fit, validation): the last ``fraction`` of their bar times, purged."""
    times = np.unique(start[train])
    cut = int(len(times) * (1.0 - fraction))
    if cut - purge < 1 or cut >= len(times):
        raise ValueError(f"too few bar times ({len(times)}) for a {fraction:.0%} validation split with purge {purge}")
    t = start[train]
    return train[t < times[cut - purge]], train[t >= times[cut]]
