"""One backtest from a config to its folder: data, engine, run, files. Shared by ``raytrade backtest``,
its sweeps and its walk-forward folds (each a Ray task calling :func:`run_backtest`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raytrade.backtest.data import MarketData, load_market, parse_time
from raytrade.backtest.outputs import write_outputs
from raytrade.backtest.runner import Backtest, BacktestRun, fresh_output
from raytrade.cluster.config import ConfigError, ModelConfig, RunConfig
from raytrade.domain.shard_engine import ShardModel
from raytrade.strategy.loader import load_strategies

HEADLINE = ("orders", "fills", "net_pnl", "equity", "wall_s", "events_per_s")


def load_data(
    cfg: RunConfig,
    path: str | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    subset: Sequence[str] | None = None,
    known: Sequence[str] | None = None,
) -> tuple[str, MarketData]:
    """The configured market data (or ``path``), ``[start, end)``, only ``subset``'s symbols if given
    (``known``: every symbol the data may hold, default the config's instruments)."""
    bt = cfg.backtest
    where = path or bt.data
    if not where:
        raise ConfigError("no market data: pass --data PATH or set backtest.data")
    first, last = start or bt.start, end or bt.end
    data = load_market(
        where,
        known or [i.symbol for i in cfg.instruments],
        _bound(first, "start"),
        _bound(last, "end"),
        subset,
    )
    return where, data.as_ticks() if bt.bars_as_ticks else data


def _bound(value: str | int | None, name: str) -> int | None:
    """An ISO date/time or epoch nanoseconds."""
    if value is None or value == "":
        return None
    return value if isinstance(value, int) else parse_time(value, name)


def configured(cfg: RunConfig) -> ShardModel | None:
    """The config's model; the model stack (torch, XGBoost, LightGBM) is imported only when there is one."""
    if cfg.model is None:
        return None
    from raytrade.training.bootstrap import configured_model

    return configured_model(cfg)


def run_backtest(
    cfg: RunConfig,
    data: MarketData,
    out_dir: Path,
    info: dict[str, Any],
    model: ShardModel | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], BacktestRun]:
    """Run ``cfg``'s strategies over ``data`` into ``out_dir`` (ledger, summary, trades, report); the summary
    and the run (its engines, books and curve).

    Raises :class:`~raytrade.strategy.base.StrategyFailedError` when a strategy raises (the ledger
    then holds every event before it) and :class:`~raytrade.strategy.loader.StrategyError` for a
    strategy that does not load.
    """
    ledger = fresh_output(out_dir)
    engine = Backtest(cfg, model, lambda: load_strategies(cfg.strategy_specs()), str(ledger))
    run = engine.run(data, progress)
    return write_outputs(cfg, run, data, out_dir, info), run


def absolute_paths(raw: dict[str, Any]) -> dict[str, Any]:
    """Data and registry paths made absolute (against the working directory, as ``raytrade backtest`` reads
    them), so Ray workers, whatever their working directory, read the same files (on a cluster: a shared
    file system, or the same paths on every node)."""
    backtest = raw.setdefault("backtest", {})
    if backtest.get("data") and "://" not in str(backtest["data"]):
        backtest["data"] = str(Path(backtest["data"]).resolve())
    if "model" not in raw:
        raw["model"] = {"registry": ModelConfig().registry}
    model = raw.get("model")
    if isinstance(model, dict) and model.get("registry") and "://" not in str(model["registry"]):
        model["registry"] = str(Path(model["registry"]).resolve())
    return raw
