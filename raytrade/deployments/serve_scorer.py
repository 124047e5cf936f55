"""Shard scoring through the Ensemble deployment's handle (``model.scoring: serve``).

The shards' loop is asyncio and their engine scores synchronously, so the handle is called
from a helper thread (a handle's blocking ``result()`` is refused inside an event loop).
The measured default is the in-shard copy; see ``scripts/bench_serve.py`` (``shard_batch_500``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve


class ServeScorer:
    """``windows (n, history, n_features) -> P(up)`` by the ``deployment`` of Serve app ``app``."""

    def __init__(self, app: str = "raytrade", deployment: str = "Ensemble", timeout_s: float = 30.0) -> None:
        self.app = app
        self.deployment = deployment
        self.timeout_s = timeout_s
        self._pool: ThreadPoolExecutor | None = None
        self._handle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"app": self.app, "deployment": self.deployment, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _call(self, windows: np.ndarray) -> np.ndarray:
        if self._handle is None:
            self._handle = serve.get_deployment_handle(self.deployment, self.app)
        return np.asarray(self._handle.predict_windows.remote(windows).result(timeout_s=self.timeout_s))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="serve-scorer")
        return self._pool.submit(self._call, windows).result()
