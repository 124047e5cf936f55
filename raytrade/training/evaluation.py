"""Walk-forward evaluation of every model, the ensemble, the anomaly gate and GARCH, next to baselines."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from raytrade.domain.features import FEATURE_NAMES
from raytrade.training.datasets import Dataset
from raytrade.training.metrics import hit_rate, information_coefficient, rank_ic
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.ensemble import EnsembleModel
from raytrade.training.models.garch import GarchModel
from raytrade.training.signal_backtest import Costs, backtest, per_symbol_positions
from raytrade.training.splits import walk_forward

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate; ``bars_per_year`` 0 = infer from the bar spacing (see :func:`bars_per_year`)."""

    n_folds: int = 4
    min_train_fraction: float = 0.4
    costs: Costs = field(default_factory=Costs)  # the paper broker's, for one unit of position
    long_above: float = 0.53
    short_below: float = 0.47
    bars_per_year: float = 0.0
    seed: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=lambda: {"lstm": {}, "xgboost": {}, "lightgbm": {}})
    anomaly: dict[str, Any] = field(default_factory=dict)


def bars_per_year(start: np.ndarray) -> float:
    """252 for daily (or slower) bars, an exchange calendar; else 365 days of bars (a 24/7 market)."""
    step = float(np.median(np.diff(np.unique(start))))
    return 252.0 if step >= DAY_NS * 0.9 else 365.0 * DAY_NS / step


def _costs(c: dict[str, Any]) -> str:
    cap = "no volume cap" if c["max_participation"] is None else f"at most {c['max_participation']:.0%} of a bar"
    return (
        f"fee {c['fee_bps']} bps, half spread {c['half_spread_bps']} bps, impact coef {c['impact_coef']}, {cap}, "
        f"{c['notional']:,.0f} per unit"
    )


def _tstat(values: list[float]) -> float:
    a = np.asarray(values)
    sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return float(a.mean() / (sd / np.sqrt(len(a)))) if sd > 0 else 0.0


def _verdict(m: dict[str, Any], best_baseline: float) -> str:
    significant = m["ic_mean"] > 0 and m["ic_tstat"] > 2.0
    if significant and m["backtest"]["sharpe"] > max(best_baseline, 0.0):
        return "edge after costs (beats both baselines)"
    if significant and m["backtest"]["sharpe_gross"] > 0:
        return "edge before costs only (does not beat the baselines after costs)"
    if significant:
        return "positive IC, but it does not trade profitably"
    return "no edge (out-of-sample IC not significantly positive)"


def evaluate(data: Dataset, s: EvalSettings) -> dict[str, Any]:
    """Fit on each fold's training rows, score its test rows; report the stitched out-of-sample results."""
    t0 = time.monotonic()
    bpy = s.bars_per_year or bars_per_year(data.start)
    folds = walk_forward(data.start, s.n_folds, data.horizon, min_train_fraction=s.min_train_fraction)
    test_rows = np.concatenate([f.test for f in folds])
    scores: dict[str, list[np.ndarray]] = {}
    flags, vol_pred = [], []
    fold_reports: list[dict[str, Any]] = []
    for f in folds:
        ens = EnsembleModel({"members": s.members}, s.seed)
        ens.fit(data, f.train)
        member = ens.predict_members(data, f.test)
        member["ensemble"] = ens.combine(member)
        det = AnomalyDetector(s.anomaly, s.seed)
        det.fit(data.x[f.train])
        flags.append(det.flags(data.x[f.test]))
        vol_pred.append(_garch_forecast(data, f.train, f.test))
        fwd = data.forward_return[f.test]
        fold_reports.append(
            {
                "fold": f.index,
                "train_rows": len(f.train),
                "test_rows": len(f.test),
                "test_start_ns": int(data.start[f.test[0]]),
                "test_end_ns": int(data.start[f.test[-1]]),
                "weights": ens.weights,
                "ic": {k: round(information_coefficient(v, fwd), 6) for k, v in member.items()},
            }
        )
        for k, v in member.items():
            scores.setdefault(k, []).append(v)
    fwd = data.forward_return[test_rows]
    gate = np.concatenate(flags)
    no_hold = np.zeros(len(test_rows), dtype=bool)
    baselines = _baselines(data, test_rows, s, bpy)
    best_baseline = max(b["backtest"]["sharpe"] for b in baselines.values())
    models: dict[str, Any] = {}
    for name, parts in scores.items():
        p = np.concatenate(parts)
        pos = per_symbol_positions(data, test_rows, p, s.long_above, s.short_below, no_hold)
        ic_folds = [r["ic"][name] for r in fold_reports]
        m: dict[str, Any] = {
            "ic": round(information_coefficient(p, fwd), 6),
            "rank_ic": round(rank_ic(p, fwd), 6),
            "hit_rate": round(hit_rate(p, fwd), 6),
            "ic_folds": ic_folds,
            "ic_mean": round(float(np.mean(ic_folds)), 6),
            "ic_tstat": round(_tstat(ic_folds), 3),
            "backtest": backtest(data, test_rows, pos, s.costs, bpy).as_dict(),
        }
        m["verdict"] = _verdict(m, best_baseline)
        models[name] = m
        if name == "ensemble":
            gated = per_symbol_positions(data, test_rows, p, s.long_above, s.short_below, gate)
            models["ensemble+anomaly_gate"] = {
                "blocked_fraction": round(float(gate.mean()), 6),
                "backtest": backtest(data, test_rows, gated, s.costs, bpy).as_dict(),
            }
    return {
        "data": {
            "symbols": list(data.symbols),
            "rows": len(data),
            "oos_rows": len(test_rows),
            "start_ns": int(data.start[0]),
            "end_ns": int(data.start[-1]),
            "horizon_bars": data.horizon,
            "bars_per_year": round(bpy, 3),
        },
        "settings": asdict(s),
        "folds": fold_reports,
        "models": models,
        "baselines": baselines,
        "garch": _garch_report(data, test_rows, np.concatenate(vol_pred)),
        "wall_s": round(time.monotonic() - t0, 2),
    }


def _baselines(data: Dataset, rows: np.ndarray, s: EvalSettings, bpy: float) -> dict[str, Any]:
    momentum = np.sign(data.x[rows, FEATURE_NAMES.index("ret_15")])
    out = {}
    for name, pos, rule in (
        ("buy_and_hold", np.ones(len(rows)), "long every symbol from the first out-of-sample bar"),
        ("momentum", momentum, "sign of the last 15-bar return, long or short, rebalanced every bar"),
    ):
        out[name] = {"rule": rule, "backtest": backtest(data, rows, pos, s.costs, bpy).as_dict()}
    return out


def _garch_forecast(data: Dataset, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """GARCH fitted on each symbol's training returns; forecasts for the test rows' next bar."""
    model = GarchModel()
    model.fit({s: data.next_return[train][data.symbol[train] == i] for i, s in enumerate(data.symbols)})
    out = np.full(len(test), np.nan)
    for i, s in enumerate(data.symbols):
        if s not in model.params:
            continue  # too little training history (a symbol listed later): no forecast
        rows = np.flatnonzero(data.symbol == i)  # the whole history: each forecast uses earlier returns only
        sigma = model.forecast(s, data.next_return[rows])
        where = np.searchsorted(rows, test[data.symbol[test] == i])
        out[data.symbol[test] == i] = sigma[where]
    return out


def _garch_report(data: Dataset, rows: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Next-bar variance forecasts against the squared realized return: GARCH vs 30-bar realized vol."""
    ok = np.isfinite(sigma)
    rows, sigma = rows[ok], sigma[ok]
    realized = data.next_return[rows] ** 2
    rv = data.x[rows, FEATURE_NAMES.index("rv_30")] ** 2
    mse_garch = float(np.mean((sigma**2 - realized) ** 2))
    mse_rv = float(np.mean((rv - realized) ** 2))
    return {
        "rows": float(ok.sum()),
        "mse_garch": mse_garch,
        "mse_rv30": mse_rv,
        "mse_ratio_garch_to_rv30": round(mse_garch / mse_rv, 6) if mse_rv > 0 else float("nan"),
        "corr_garch_realized": round(information_coefficient(sigma**2, realized), 6),
        "corr_rv30_realized": round(information_coefficient(rv, realized), 6),
    }


def render_markdown(report: dict[str, Any], title: str) -> str:
    """The report's comparison table (out-of-sample, walk-forward, stitched test folds)."""
    d = report["data"]
    lines = [
        f"## {title}",
        "",
        f"{len(d['symbols'])} symbols, {d['rows']} rows, {d['oos_rows']} out of sample in "
        f"{len(report['folds'])} walk-forward folds; horizon {d['horizon_bars']} bars; "
        f"traded through the paper broker ({_costs(report['settings']['costs'])}); Sharpe annualized with "
        f"{d['bars_per_year']} bars/year.",
        "",
        "| model | IC | rank IC | hit rate | IC t-stat | Sharpe net | Sharpe gross | max DD | return | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        b = m["backtest"]
        if "ic" not in m:
            lines.append(
                f"| {name} (blocked {m['blocked_fraction']:.2%}) | | | | | {b['sharpe']:.2f} | {b['sharpe_gross']:.2f} "
                f"| {b['max_drawdown']:.2%} | {b['total_return']:.2%} | |"
            )
            continue
        lines.append(
            f"| {name} | {m['ic']:.4f} | {m['rank_ic']:.4f} | {m['hit_rate']:.2%} | {m['ic_tstat']:.2f} "
            f"| {b['sharpe']:.2f} | {b['sharpe_gross']:.2f} | {b['max_drawdown']:.2%} | {b['total_return']:.2%} "
            f"| {m['verdict']} |"
        )
    for name, m in report["baselines"].items():
        b = m["backtest"]
        lines.append(
            f"| baseline: {name} | | | | | {b['sharpe']:.2f} | {b['sharpe_gross']:.2f} | {b['max_drawdown']:.2%} "
            f"| {b['total_return']:.2%} | {m['rule']} |"
        )
    g = report["garch"]
    lines += [
        "",
        f"GARCH(1,1) next-bar variance: MSE ratio to 30-bar realized variance {g['mse_ratio_garch_to_rv30']:.3f} "
        f"(< 1 = GARCH better); correlation with realized {g['corr_garch_realized']:.3f} "
        f"vs {g['corr_rv30_realized']:.3f}.",
    ]
    return "\n".join(lines) + "\n"
