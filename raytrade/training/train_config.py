"""Validated settings of ``raytrade train`` and ``raytrade tune`` (YAML, unknown keys rejected)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raytrade.cluster.config import ConfigError
from raytrade.training.evaluation import EvalSettings
from raytrade.training.signal_backtest import Costs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Bars to learn from: the synthetic market, or a CSV/Parquet file or folder of 1-minute/daily bars."""

    source: str = Field("synthetic", description="'synthetic' or a path to bars")
    synthetic_seed: int = 7
    synthetic_days: float = Field(3.0, gt=0, le=60)
    horizon_bars: int = Field(5, ge=1, description="Label: log return over this many bars ahead")
    symbols: tuple[str, ...] | None = Field(None, description="Keep only these symbols")
    last_bars: int | None = Field(None, ge=100, description="Keep only each symbol's most recent bars")


class EvalConfig(_Strict):
    n_folds: int = Field(4, ge=1, le=20)
    min_train_fraction: float = Field(0.4, gt=0, lt=1)
    fee_bps: float = Field(2.0, ge=0, description="Taker fee of the paper broker, bps")
    half_spread_bps: float = Field(0.5, ge=0, description="Half spread paid by a market order, bps")
    impact_coef: float = Field(1.0, ge=0, description="Square-root impact: coef * sigma * sqrt(qty / bar volume)")
    max_participation: float | None = Field(0.1, gt=0, le=1, description="Share of a bar's volume; null = no cap")
    notional: float = Field(10_000.0, gt=0, description="Quote-currency size of one unit of position")
    long_above: float = Field(0.53, ge=0, le=1)
    short_below: float = Field(0.47, ge=0, le=1)
    bars_per_year: float = Field(0.0, ge=0, description="0 = infer: 252 for daily bars, else 24/7")


class TrainConfig(_Strict):
    """``raytrade train``: evaluate walk-forward, fit on everything, register."""

    data: DataConfig = DataConfig()
    evaluation: EvalConfig = EvalConfig()
    seed: int = 0
    members: dict[Literal["lstm", "xgboost", "lightgbm"], dict[str, Any]] = Field(
        default_factory=lambda: {"lstm": {}, "xgboost": {}, "lightgbm": {}}  # type: ignore[arg-type]
    )
    anomaly: dict[str, Any] = Field(default_factory=dict, description="IsolationForest hyperparameters")
    registry: str = "var/models"
    name: str = Field("ensemble", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    anomaly_name: str = Field("anomaly_iforest", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    garch_name: str = Field("garch_vol", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    approve: bool = Field(False, description="Approve the new versions (shards load 'approved')")
    output_dir: str = "runs/train"

    @model_validator(mode="after")
    def _ordered(self) -> TrainConfig:
        if self.evaluation.short_below > self.evaluation.long_above:
            raise ValueError("evaluation.short_below must be <= evaluation.long_above")
        if not self.members:
            raise ValueError("members: name at least one of lstm, xgboost, lightgbm")
        return self

    def eval_settings(self) -> EvalSettings:
        e = self.evaluation
        return EvalSettings(
            n_folds=e.n_folds,
            min_train_fraction=e.min_train_fraction,
            costs=Costs(e.fee_bps, e.half_spread_bps, e.impact_coef, e.max_participation, e.notional),
            long_above=e.long_above,
            short_below=e.short_below,
            bars_per_year=e.bars_per_year,
            seed=self.seed,
            members={k: dict(v) for k, v in self.members.items()},
            anomaly=dict(self.anomaly),
        )


def load_yaml(path: str | Path | None, model: type[_Strict], overrides: dict[str, Any] | None = None) -> Any:
    """Read ``path`` (or defaults when ``None``), apply dotted ``overrides``, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"invalid config {path or '<defaults>'}:\n" + "\n".join(lines)) from exc
