"""LSTM over the last ``seq_len`` feature vectors of a symbol (PyTorch, one thread)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from raytrade.training.datasets import Dataset
from raytrade.training.models.base import merge_params, pack, unpack

DEFAULTS: dict[str, Any] = {
    "seq_len": 16,
    "hidden": 32,
    "layers": 1,
    "dropout": 0.0,
    "epochs": 3,
    "batch_size": 256,
    "lr": 2e-3,
    "weight_decay": 1e-5,
    "max_train_rows": 60_000,  # the most recent rows; older ones are dropped
}
CLIP = 8.0  # standardized features are clipped to +-CLIP


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Net(nn.Module):
    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        logits: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return logits


class LstmModel:
    """Binary classifier; features standardized with the training rows' mean and deviation."""

    kind: ClassVar[str] = "lstm"

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = merge_params(self.kind, DEFAULTS, params)
        self.seed = seed
        self.net: _Net | None = None
        self.mean = np.zeros(0)
        self.std = np.ones(0)

    @property
    def history(self) -> int:
        return int(self.params["seq_len"])

    def _scale(self, windows: np.ndarray) -> torch.Tensor:
        z = np.clip((windows - self.mean) / self.std, -CLIP, CLIP)
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))

    def _new_net(self, n_features: int) -> _Net:
        p = self.params
        return _Net(n_features, int(p["hidden"]), int(p["layers"]), float(p["dropout"]) if p["layers"] > 1 else 0.0)

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        p = self.params
        rows = rows[-int(p["max_train_rows"]) :]
        self.mean = data.x[rows].mean(axis=0)
        self.std = data.x[rows].std(axis=0) + 1e-12
        with one_thread():
            torch.manual_seed(self.seed)
            rng = np.random.default_rng(self.seed)
            net = self._new_net(data.x.shape[1])
            opt = torch.optim.Adam(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
            loss_fn = nn.BCEWithLogitsLoss()
            x_all = self._scale(data.windows(rows, self.history))
            y_all = torch.from_numpy(data.y[rows].astype(np.float32))
            xv = yv = None
            if valid is not None and len(valid):
                xv = self._scale(data.windows(valid, self.history))
                yv = torch.from_numpy(data.y[valid].astype(np.float32))
            best: tuple[float, dict[str, torch.Tensor]] | None = None
            bs = int(p["batch_size"])
            for _ in range(int(p["epochs"])):
                net.train()
                for b in np.array_split(rng.permutation(len(rows)), max(1, len(rows) // bs)):
                    opt.zero_grad()
                    loss = loss_fn(net(x_all[b]), y_all[b])
                    loss.backward()
                    opt.step()
                if xv is not None and yv is not None:  # keep the epoch with the best validation loss
                    net.eval()
                    with torch.no_grad():
                        vloss = float(loss_fn(net(xv), yv))
                    if best is None or vloss < best[0]:
                        best = (vloss, {k: v.clone() for k, v in net.state_dict().items()})
            if best is not None:
                net.load_state_dict(best[1])
        net.eval()
        self.net = net

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("lstm model is not fitted")
        if windows.ndim != 3 or windows.shape[1:] != (self.history, len(self.mean)):
            raise ValueError(f"expected windows (n, {self.history}, {len(self.mean)}), found shape {windows.shape}")
        with one_thread(), torch.no_grad():
            out = torch.sigmoid(self.net(self._scale(windows)))
        return out.numpy().astype(np.float64)

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray:
        parts = [
            self.predict_windows(data.windows(c, self.history)) for c in np.array_split(rows, len(rows) // 8192 + 1)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def to_bytes(self) -> bytes:
        if self.net is None:
            raise RuntimeError("lstm model is not fitted")
        buf = io.BytesIO()
        torch.save(self.net.state_dict(), buf)
        head = {"params": self.params, "seed": self.seed, "mean": self.mean.tolist(), "std": self.std.tolist()}
        return pack(head, buf.getvalue())

    @classmethod
    def from_bytes(cls, raw: bytes) -> LstmModel:
        head, body = unpack(raw)
        model = cls(head["params"], head["seed"])
        model.mean, model.std = np.asarray(head["mean"]), np.asarray(head["std"])
        net = model._new_net(len(model.mean))
        net.load_state_dict(torch.load(io.BytesIO(body), weights_only=True))
        net.eval()
        model.net = net
        return model
