"""The one validated configuration: YAML + environment overrides, unknown keys rejected.

Environment overrides use nested names: ``RAYTRADE__RISK__MAX_ORDER_NOTIONAL=5000``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raytrade.domain.instruments import Instrument
from raytrade.domain.paper_broker import FeeSchedule, PaperBrokerConfig
from raytrade.domain.risk import RiskLimits
from raytrade.strategy.loader import StrategyError, StrategySpec, check_specs, resolve_path

ENV_PREFIX = "RAYTRADE__"


class ConfigError(ValueError):
    """The configuration is invalid; the message names every bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Strict):
    """Where ticks come from."""

    bootstrap_servers: str | None = Field(
        None, description="External Kafka 'host:port'; empty starts the embedded broker on loopback"
    )
    backend: Literal["confluent", "kafka-python"] = Field("confluent", description="Kafka client library")
    topic: str = Field("ticks", description="Topic of trade ticks, key = symbol")
    dead_letter_topic: str = Field("ticks.dlq", description="Where rejected messages go, with the reason")
    partitions: int = Field(2, ge=1, le=256, description="Partitions of the ticks topic (one shard each)")
    group_id: str = Field("raytrade-shards", description="Consumer group for committed offsets")
    roll_records: int | None = Field(
        None,
        ge=1000,
        description="Embedded broker only: write the ticks log as a chain of topics of this many records and "
        "delete the ones every shard's snapshot has passed (Tansu keeps everything and slows down as it grows); "
        "null = one topic",
    )


class RayConfig(_Strict):
    """The local Ray instance started by ``raytrade run`` (ignored when ``address`` is set)."""

    address: str | None = Field(None, description="Existing cluster address ('auto' or host:port); empty starts one")
    num_cpus: int = Field(2, ge=1, description="CPUs for a locally started Ray")
    object_store_mb: int = Field(200, ge=80, description="Object store size for a locally started Ray, MB")
    include_dashboard: bool = Field(False, description="Start the Ray dashboard")
    namespace: str = Field(
        "raytrade", pattern=r"^[A-Za-z0-9_\-]+$", description="Ray namespace of the named engine actors"
    )
    metrics_export_port: int | None = Field(
        None, ge=1024, le=65535, description="Port of the node's Prometheus metrics (empty = Ray picks one)"
    )


class InstrumentConfig(_Strict):
    """One tradable symbol."""

    symbol: str
    price_increment: Decimal = Field(gt=0)
    size_increment: Decimal = Field(gt=0)
    calendar: Literal["24/7", "equity"] = Field(
        "24/7", description="Trading calendar: annualises metrics (24/7 minutes, or 252 sessions of 390 minutes)"
    )

    def instrument(self) -> Instrument:
        """As a domain instrument."""
        return Instrument(self.symbol, self.price_increment, self.size_increment)


class FeedConfig(_Strict):
    """The built-in producer used by ``raytrade run``."""

    source: Literal["synthetic", "file", "none"] = Field(
        "synthetic", description="synthetic market, a Parquet/CSV file, or none (ticks produced elsewhere)"
    )
    path: str | None = Field(None, description="Parquet/CSV file when source = file")
    seed: int = Field(7, description="Synthetic market seed")
    rate: float = Field(3000.0, gt=0, description="Ticks per second published")
    simulated_seconds: int = Field(4 * 3600, ge=60, description="Simulated market time to publish (synthetic)")


class StrategyEntry(_Strict):
    """One strategy: its id (the prefix of its order ids), import path and params."""

    id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Order-id prefix; unique")
    path: str = Field(description="'package.module:Class' or 'path/to/file.py:Class' (a Strategy subclass)")
    params: dict[str, Any] = Field(default_factory=dict, description="Validated by the class's Params model")

    def spec(self) -> StrategySpec:
        """As the loader's spec."""
        return StrategySpec(self.id, self.path, dict(self.params))


DEFAULT_STRATEGIES = (StrategyEntry(id="xgb_threshold", path="raytrade.strategy.builtins:ModelThreshold"),)


class ModelConfig(_Strict):
    """Which model the shards score with."""

    registry: str = Field("var/models", description="Model registry: a directory or a file:// URI")
    name: str = Field("xgb_direction", pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Registered signal model")
    version: str = Field(
        "approved", pattern=r"^(approved|latest|v\d{4,})$", description="'approved', 'latest' or a pinned vNNNN"
    )
    anomaly_gate: str | None = Field(
        "anomaly_iforest", description="Registered anomaly detector whose flag blocks trading; null = none"
    )
    scoring: Literal["local", "serve"] = Field(
        "local",
        description="Shards score with their own model copy (local) or through Serve's Ensemble deployment "
        "(serve; needs serve.enabled). Local measured 2x faster per batch: scripts/bench_serve.py",
    )
    bootstrap_days: float = Field(3.0, gt=0, description="Synthetic history to train on when the registry is empty")
    horizon_bars: int = Field(5, ge=1, description="Label horizon in 1-minute bars")
    rounds: int = Field(150, ge=1, description="Boosting rounds")


class RiskConfig(_Strict):
    """Pre-trade limits (quote currency), portfolio risk and circuit breakers; null = check off."""

    max_order_notional: Decimal = Field(Decimal(25_000), gt=0)
    max_position_notional: Decimal = Field(Decimal(25_000), gt=0)
    max_gross_exposure: Decimal = Field(Decimal(60_000), gt=0)
    max_net_exposure: Decimal | None = Field(None, gt=0)
    max_order_qty: dict[str, Decimal] = Field(default_factory=dict, description="Per symbol")
    max_position_qty: dict[str, Decimal] = Field(default_factory=dict, description="Per symbol")
    max_orders_per_s: int | None = Field(None, ge=1, description="All symbols, in event time (tick/bar timestamps)")
    max_orders_per_s_per_symbol: int | None = Field(None, ge=1)
    price_band: Decimal | None = Field(None, gt=0, lt=1, description="Max |price - last trade| / last trade")
    min_cash: Decimal | None = Field(None, ge=0)
    max_var: Decimal | None = Field(None, gt=0, description="Max portfolio VaR after the order, quote currency")
    var_method: Literal["historical", "parametric"] = "historical"
    var_quantile: float = Field(0.99, gt=0.5, lt=1)
    var_horizon_bars: int = Field(60, ge=1, description="VaR horizon in one-minute bars")
    var_window: int = Field(500, ge=50, description="Bars of returns the VaR is estimated from")
    max_correlated_exposure: Decimal | None = Field(None, gt=0, description="Max sqrt(e' R e), R = correlations")
    drawdown_reduce: Decimal | None = Field(None, gt=0, lt=1, description="Fraction below peak equity -> REDUCING")
    drawdown_halt: Decimal | None = Field(None, gt=0, lt=1, description="-> HALTED")
    intraday_reduce: Decimal | None = Field(None, gt=0, lt=1, description="Below the UTC day's opening equity")
    intraday_halt: Decimal | None = Field(None, gt=0, lt=1)
    stop_atr_multiple: float | None = Field(None, gt=0, description="ATR trailing stop per position; null = off")
    stop_atr_period: int = Field(14, ge=2)

    def limits(self) -> RiskLimits:
        """As the domain's limits."""
        return RiskLimits(**self.model_dump())


class ExecutionConfig(_Strict):
    """Paper broker and ledger."""

    initial_cash: Decimal = Field(Decimal(100_000), gt=0)
    fee_bps: Decimal = Field(Decimal("2"), ge=0, description="Taker fee, bps of notional")
    maker_fee_bps: Decimal = Field(Decimal("0"), description="Maker fee, bps (negative = rebate)")
    fee_per_unit: Decimal = Field(Decimal("0"), ge=0, description="Per-share/contract fee")
    min_fee: Decimal = Field(Decimal("0"), ge=0)
    half_spread_bps: Decimal = Field(Decimal("0.5"), ge=0)
    impact_coef: float = Field(1.0, ge=0, description="Square-root impact: coef * sigma * sqrt(qty / bar volume)")
    max_participation: float = Field(0.1, gt=0, le=1, description="Share of a bar's volume orders may take")
    order_latency_ms: float = Field(50.0, ge=0, description="Event time from decision to the venue")
    ledger_path: str | None = Field(
        None,
        description="SQLite file or postgresql:// URL; empty = <output_dir>/ledger.db (new each run on the embedded "
        "broker)",
    )
    venue_latency_ms: float = Field(0.0, ge=0, description="Simulated broker round trip per batch of orders, ms")

    def broker_config(self) -> PaperBrokerConfig:
        """The paper broker's settings."""
        fees = FeeSchedule(self.fee_bps, self.maker_fee_bps, self.fee_per_unit, self.min_fee)
        return PaperBrokerConfig(
            fees, self.half_spread_bps, self.impact_coef, self.max_participation, int(self.order_latency_ms * 1e6)
        )


class ActorPlacement(_Strict):
    """Where a group of actors runs: on nodes with a custom resource, or on one node."""

    resources: dict[str, float] = Field(default_factory=dict, description="Custom resources each actor needs")
    node_id: str | None = Field(None, description="Pin to this Ray node id (hard affinity)")

    def options(self) -> dict[str, Any]:
        """Ray actor options for this placement."""
        out: dict[str, Any] = {}
        if self.resources:
            out["resources"] = dict(self.resources)
        if self.node_id:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            out["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
        return out


class PlacementConfig(_Strict):
    """Actor placement across Ray nodes (default: anywhere)."""

    engine: ActorPlacement = Field(ActorPlacement(), description="The RiskGate and Execution")
    shards: ActorPlacement = Field(ActorPlacement(), description="The MarketShards")


class ServeSection(_Strict):
    """The HTTP gateway on Ray Serve, deployed next to the engine by ``raytrade run --serve``."""

    enabled: bool = Field(False, description="Deploy the gateway (configs/serve.yaml) with the engine")
    config: str = Field("configs/serve.yaml", description="Serve config deployed (the `serve deploy` file)")
    host: str = Field("127.0.0.1", description="HTTP bind address (loopback by default)")
    port: int = Field(8000, ge=1024, le=65535, description="HTTP port")


class WalkForwardSection(_Strict):
    """``raytrade backtest --walk-forward``: per fold, train the model on the bars before a test block
    (purged), register it as a walk-forward artifact, and backtest the block with it."""

    folds: int = Field(3, ge=1, description="Consecutive out-of-sample test blocks")
    min_train_fraction: float = Field(
        0.4, gt=0, lt=1, description="The first fraction of the data's bar times is training only"
    )
    window: Literal["expanding", "rolling"] = Field(
        "expanding", description="expanding: train on everything before the block; rolling: the last train_bars"
    )
    train_bars: int | None = Field(None, ge=100, description="Bar times in a rolling window (default: the first)")
    purge_bars: int | None = Field(
        None, ge=0, description="Bar times left out between training and test (default: model.horizon_bars)"
    )
    seed: int = Field(7, description="Training seed (every fold)")
    output_dir: str = Field("runs/walk_forward", description="report.html, folds.csv, folds/<k>/ per fold")
    num_cpus: float = Field(1.0, gt=0, description="CPUs a fold reserves (its Ray task's num_cpus)")
    max_concurrent: int | None = Field(None, ge=1, description="Folds in flight at once (default: as CPUs fit)")
    local_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray started when no --address")


class BacktestSection(_Strict):
    """``raytrade backtest``: the same strategies, risk rules, paper broker and ledger, over history."""

    data: str | None = Field(None, description="CSV/Parquet file or folder of bars or ticks (or --data)")
    start: str | None = Field(None, description="ISO date/time, inclusive (UTC unless given)")
    end: str | None = Field(None, description="ISO date/time, exclusive")
    fills: Literal["next_bar_open", "paper"] = Field(
        "next_bar_open",
        description="next_bar_open: an order decided at a bar's close fills at the next bar's open, whole, no "
        "spread/impact/latency (fees still apply); paper: the paper broker's latency, spread, impact and volume cap",
    )
    bars_as_ticks: bool = Field(False, description="Blow each bar up into 4 synthetic trades (off: bars go in whole)")
    calendar: Literal["auto", "24/7", "equity"] = Field(
        "auto", description="Annualisation of the report; auto = equity if every instrument is, else 24/7"
    )
    output_dir: str = Field("runs/backtest", description="Ledger, summary.json, trades, report.html and plots")
    batch_size: int = Field(4000, ge=1, description="Events (bars or ticks) an engine prepares at a time")
    walk_forward: WalkForwardSection = WalkForwardSection()


class RunConfig(_Strict):
    """The whole system."""

    kafka: KafkaConfig = KafkaConfig()
    ray: RayConfig = RayConfig()
    feed: FeedConfig = FeedConfig()
    instruments: tuple[InstrumentConfig, ...]
    strategies: tuple[StrategyEntry, ...] = Field(
        DEFAULT_STRATEGIES, description="Strategies run by every shard (and by raytrade backtest)"
    )
    model: ModelConfig | None = Field(ModelConfig(), description="The signal model; null = none (score is None)")
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    serve: ServeSection = ServeSection()
    placement: PlacementConfig = PlacementConfig()
    backtest: BacktestSection = BacktestSection()
    gate_order: Literal["event_time", "arrival"] = Field(
        "event_time",
        description="event_time: the RiskGate takes the shards' decision points in event-time order, one at a "
        "time (a live run is deterministic and equals its backtest); arrival: each shard sends a whole batch "
        "in one call as it comes (about 6x the backlog throughput here, but portfolio checks then depend on "
        "how the shards interleave in wall-clock time)",
    )
    on_strategy_error: Literal["stop", "disable"] = Field(
        "stop", description="A raising strategy stops its shard or the backtest (traceback shown), or is switched off"
    )
    batch_size: int = Field(4000, ge=1, description="Max messages a shard consumes per batch")
    output_dir: str = Field("runs/latest", description="Where the run summary JSON is written")
    state_dir: str | None = Field(
        None, description="Shard snapshots and the kill-switch state; empty = <output_dir>/state"
    )

    def calendar(self) -> str:
        """The calendar metrics are annualised with: ``backtest.calendar``, or (auto) equity when every
        instrument trades on the equity calendar, else 24/7."""
        chosen = self.backtest.calendar
        if chosen == "auto":
            return "equity" if all(i.calendar == "equity" for i in self.instruments) else "24/7"
        return chosen

    def strategy_specs(self) -> list[StrategySpec]:
        """The loader's specs of :attr:`strategies`."""
        return [s.spec() for s in self.strategies]

    @model_validator(mode="after")
    def _strategies_load(self) -> RunConfig:
        if not self.strategies:
            raise ValueError("strategies: at least one strategy is needed")
        try:
            classes = check_specs(self.strategy_specs())
        except StrategyError as exc:
            raise ValueError(str(exc)) from None
        needy = [e.id for e, c in zip(self.strategies, classes, strict=True) if c.requires_model]
        if needy and self.model is None:
            raise ValueError(f"strategies {needy} need a model score: configure model (it is null)")
        return self

    @model_validator(mode="after")
    def _serve_scoring_needs_serve(self) -> RunConfig:
        if self.model is not None and self.model.scoring == "serve" and not self.serve.enabled:
            raise ValueError("model.scoring = serve needs serve.enabled = true (or raytrade run --serve)")
        return self

    @field_validator("instruments")
    @classmethod
    def _unique(cls, v: tuple[InstrumentConfig, ...]) -> tuple[InstrumentConfig, ...]:
        names = [i.symbol for i in v]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"instruments must be non-empty with unique symbols, found {names}")
        return v


def _set_nested(d: dict[str, Any], path: list[str], value: str) -> None:
    """Set ``d[a][b]...`` from an override path; a number indexes an existing list (``STRATEGIES__0__...``)."""
    node: Any = d
    where = "__".join(path).upper()
    for n, key in enumerate(path):
        last = n == len(path) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"environment override {where}: {key} is not an index of a {len(node)}-entry list")
            if last:
                node[int(key)] = yaml.safe_load(value)
            else:
                node = node[int(key)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"environment override {where}: {path[n - 1]} is not a section")
        if last:
            node[key] = yaml.safe_load(value)
        else:
            node = node.setdefault(key, {})


def load_config(path: str | Path | None, env: dict[str, str] | None = None) -> RunConfig:
    """Load YAML (or defaults), apply ``RAYTRADE__A__B`` environment overrides, validate."""
    return config_from_dict(raw_config(path, env), path)


def raw_config(path: str | Path | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The YAML mapping (or ``{}``) with the ``RAYTRADE__A__B`` environment overrides applied, not validated."""
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, found {type(loaded).__name__}")
        raw = loaded
    for name, value in sorted((env if env is not None else dict(os.environ)).items()):
        if name.startswith(ENV_PREFIX):
            _set_nested(raw, name[len(ENV_PREFIX) :].lower().split("__"), value)
    return raw


def config_from_dict(raw: dict[str, Any], path: str | Path | None = None) -> RunConfig:
    """Validate a raw config mapping (``path`` names it in errors): one problem, one line."""
    if "strategy" in raw:
        raise ConfigError(
            f"invalid config {path or '(defaults)'}: the 'strategy' section is now 'strategies', a list of "
            "{id, path, params}; e.g. {id: xgb_threshold, path: 'raytrade.strategy.builtins:ModelThreshold', "
            "params: {long_above: 0.53, ...}}"
        )
    for entry in raw.get("strategies") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entry["path"] = resolve_path(entry["path"])
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            where, msg = ".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where else msg)
        if len(lines) == 1:  # one problem, one line
            raise ConfigError(f"invalid config {path or '(defaults)'}: {lines[0]}") from None
        raise ConfigError(f"invalid config {path or '(defaults)'}:\n" + "\n".join(f"  {x}" for x in lines)) from None
