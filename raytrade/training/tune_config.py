"""Settings of ``raytrade tune`` (configs/tune.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from raytrade.training.train_config import DataConfig, EvalConfig, _Strict

SPACE_KINDS = ("uniform", "loguniform", "randint", "choice")


def _default_space() -> dict[str, dict[str, list[Any]]]:
    return {"learning_rate": {"loguniform": [0.01, 0.2]}, "num_leaves": {"choice": [7, 15, 31]}}


class SchedulerConfig(_Strict):
    """ASHA over walk-forward folds: a trial reports after each fold; weak trials stop early."""

    grace_period: int = Field(1, ge=1, description="Folds every trial gets before it can be stopped")
    reduction_factor: int = Field(2, ge=2)


class TuneConfig(_Strict):
    data: DataConfig = DataConfig()
    evaluation: EvalConfig = EvalConfig()
    model: Literal["xgboost", "lightgbm", "lstm"] = "lightgbm"
    search_space: dict[str, dict[str, list[Any]]] = Field(default_factory=_default_space)
    num_samples: int = Field(8, ge=1)
    scheduler: SchedulerConfig = SchedulerConfig()
    cpus_per_trial: float = Field(1.0, gt=0)
    max_concurrent_trials: int = Field(2, ge=1)
    num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray instance (ignored with ray_address)")
    object_store_mb: int = Field(300, ge=100)
    ray_address: str | None = Field(None, description="Join this cluster instead of starting a local one")
    storage_path: str = Field("runs/tune", description="Where Tune keeps trial results and checkpoints")
    experiment_name: str = Field("sweep", pattern=r"^[A-Za-z0-9_\-]+$")
    seed: int = 0
    registry: str = "var/models"
    export_name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Default: <model>_tuned")
    approve: bool = False

    @field_validator("search_space")
    @classmethod
    def _space(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        for name, spec in v.items():
            if len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
                raise ValueError(f"search_space.{name}: give exactly one of {SPACE_KINDS}, found {sorted(spec)}")
            kind, args = next(iter(spec.items()))
            if kind != "choice" and len(args) != 2:
                raise ValueError(f"search_space.{name}.{kind}: expected [low, high], found {args}")
            if kind == "choice" and not args:
                raise ValueError(f"search_space.{name}.choice: empty")
        return v
