"""What every signal model offers, and hyperparameter checking shared by them."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from raytrade.training.datasets import Dataset


class SignalModel(Protocol):
    """A model of ``P(forward return > 0)`` from feature vectors.

    ``history`` is how many consecutive feature vectors (oldest first) one prediction reads:
    1 for row models, the sequence length for the LSTM. ``predict_windows`` is the streaming
    entry point (the shards keep that many vectors per symbol); ``predict`` reads a dataset.
    """

    kind: ClassVar[str]
    params: dict[str, Any]
    seed: int

    @property
    def history(self) -> int: ...

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None: ...

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray: ...

    def predict_windows(self, windows: np.ndarray) -> np.ndarray: ...

    def to_bytes(self) -> bytes: ...


def merge_params(kind: str, defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated by ``given``; an unknown key is an error naming the known ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{kind}: unknown hyperparameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def check_rows(x: np.ndarray, n_features: int) -> np.ndarray:
    """A 2-D float64 array of ``n_features`` columns, or a clear error."""
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"expected rows of {n_features} features, found shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float64)


def pack(head: dict[str, Any], blob: bytes) -> bytes:
    """A JSON header and a binary body in one artifact: ``len(head) | head | body``."""
    h = json.dumps(head, sort_keys=True).encode()
    return len(h).to_bytes(4, "big") + h + blob


def unpack(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and body of a :func:`pack` artifact."""
    n = int.from_bytes(raw[:4], "big")
    head: dict[str, Any] = json.loads(raw[4 : 4 + n])
    return head, raw[4 + n :]


class RowModel:
    """A model that reads one feature vector per prediction (``history`` 1): the gradient-boosted trees.

    Subclasses set ``kind`` and ``defaults`` and wrap their library in four methods:
    :meth:`_train`, :meth:`_score`, :meth:`_dump` and :meth:`_load`.
    """

    kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = merge_params(self.kind, self.defaults, params)
        self.seed = seed
        self.booster: Any = None
        self.n_features = 0

    @property
    def history(self) -> int:
        return 1

    def _train(self, x: np.ndarray, y: np.ndarray) -> Any:
        raise NotImplementedError

    def _score(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def _dump(self) -> bytes:
        raise NotImplementedError

    def _load(self, body: bytes) -> Any:
        raise NotImplementedError

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.n_features = data.x.shape[1]
        self.booster = self._train(data.x[rows], data.y[rows])

    def _fitted(self) -> None:
        if self.booster is None:
            raise RuntimeError(f"{self.kind} model is not fitted")

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for ``(n, n_features)`` rows."""
        self._fitted()
        return np.asarray(self._score(check_rows(x, self.n_features)), dtype=np.float64)

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray:
        return self.predict_rows(data.x[rows])

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        return self.predict_rows(windows[:, -1, :])

    def to_bytes(self) -> bytes:
        self._fitted()
        return pack({"params": self.params, "seed": self.seed, "n_features": self.n_features}, self._dump())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        head, body = unpack(raw)
        model = cls(head["params"], head["seed"])
        model.n_features = head["n_features"]
        model.booster = model._load(body)
        return model
