"""``raytrade backtest --walk-forward`` on synthetic bars, folds as Ray tasks: each fold trains and
registers its own model (a walk-forward artifact, not approved) and trades the next block with it;
one stitched out-of-sample report. The no-look-ahead proof: rewriting every bar from a fold's test
block on leaves that fold's model bit for bit the same (and changes the later folds' models)."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.bars import BAR_NS
from raytrade.training.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[2]
RAYTRADE = str(Path(sys.executable).parent / "raytrade")
HORIZON = 5

CONFIG = """
kafka: {{partitions: 1}}
instruments:
  - {{symbol: BTCUSDT, price_increment: '0.01', size_increment: '0.00001'}}
  - {{symbol: ETHUSDT, price_increment: '0.01', size_increment: '0.0001'}}
strategies:
  - id: xgb
    path: raytrade.strategy.builtins:ModelThreshold
    params: {{long_above: 0.52, short_below: 0.48, order_notional: '10000', allow_short: true}}
model:
  {{registry: '{registry}', name: xgb_direction, anomaly_gate: anomaly_iforest, horizon_bars: {horizon}, rounds: 20}}
risk: {{max_order_notional: '100000', max_position_notional: '100000', max_gross_exposure: '1000000'}}
execution: {{initial_cash: '1000000', fee_bps: '1'}}
backtest:
  data: '{data}'
  fills: next_bar_open
  walk_forward: {{folds: 3, min_train_fraction: 0.4, max_concurrent: 2, local_cpus: 2, output_dir: '{out}'}}
"""


def bars() -> pl.DataFrame:
    frame = ticks_to_bars(SyntheticMarket(seed=11).ticks_frame(2 * 86_400))
    return frame.filter(pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"]))


def walk_forward(tmp: Path, name: str, frame: pl.DataFrame) -> dict[str, Any]:
    root = tmp / name
    root.mkdir()
    frame.write_parquet(root / "bars.parquet")
    config = root / "wf.yaml"
    config.write_text(
        CONFIG.format(registry=root / "registry", horizon=HORIZON, data=root / "bars.parquet", out=root / "out")
    )
    result = subprocess.run(
        [RAYTRADE, "backtest", "--walk-forward", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    out["registry"] = ModelRegistry(root / "registry")
    out["root"] = root
    return out


def iso_ns(text: str) -> int:
    return int(np.datetime64(text.removesuffix("Z"), "ns").astype(np.int64))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("walk_forward")
    clean = walk_forward(tmp, "clean", bars())
    # Rewrite history from fold 0's test block on: a different path (prices x a drifting factor).
    cut = iso_ns(clean["folds"][0]["test_start"])
    frame = bars()
    factor = pl.when(pl.col("start") >= cut).then(1.0 + (pl.col("start") - cut) / (1e3 * BAR_NS)).otherwise(1.0)
    tampered = frame.with_columns([(pl.col(c) * factor).round(2) for c in ("open", "high", "low", "close")])
    return clean, walk_forward(tmp, "tampered", tampered)


def test_each_fold_trains_registers_and_trades_its_block(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clean, _ = runs
    folds = clean["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    reg: ModelRegistry = clean["registry"]
    assert reg.versions("xgb_direction") == ["v0001", "v0002", "v0003"]
    for f in folds:
        name, version = f["model"].split("/")
        meta = reg.meta(name, version)
        wf = meta.extra["walk_forward"]
        assert meta.extra["trained_by"] == "walk_forward" and not reg.is_approved(name, version)
        assert wf["fold"] == f["fold"] and wf["test_start"] == iso_ns(f["test_start"])
        assert f["gate"].startswith("anomaly_iforest/") and f["orders"] > 0
        # The last training row's label (HORIZON bars ahead) ends before the purge gap and the block.
        assert meta.data_range[1] + HORIZON * BAR_NS < wf["train_end"] <= wf["test_start"] - HORIZON * BAR_NS
        fold_dir = clean["root"] / "out" / "folds" / str(f["fold"])
        summary = json.loads((fold_dir / "summary.json").read_text())
        assert summary["metrics"]["start"] >= f["test_start"] and summary["orders"] == f["orders"]
    for a, b in itertools.pairwise(folds):  # consecutive, non-overlapping blocks
        assert a["test_end"] == b["test_start"]


def test_the_stitched_curve_compounds_the_folds(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clean, _ = runs
    growth = math.prod(1.0 + f["total_return"] for f in clean["folds"])
    assert clean["metrics"]["total_return"] == pytest.approx(growth - 1.0, rel=1e-9, abs=1e-12)
    assert clean["metrics"]["trades"] == sum(f["trades"] for f in clean["folds"])
    page = (clean["root"] / "out" / "report.html").read_text()
    assert "out of sample, stitched" in page and page.count("data:image/png;base64,") >= 4
    for k in range(3):
        assert f"fold_{k}_sharpe" in page
    assert pl.read_csv(clean["root"] / "out" / "folds.csv").height == 3


def test_no_fold_model_saw_a_bar_of_its_own_test_block(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clean, tampered = runs
    sha = [r["registry"].meta(*f["model"].split("/")).sha256 for r in (clean, tampered) for f in r["folds"]]
    clean_sha, tampered_sha = sha[:3], sha[3:]
    # Fold 0 trained only on bars before its block: rewriting the block (and all after) changes nothing.
    assert clean_sha[0] == tampered_sha[0]
    # The rewrite is real: later folds train on it, and fold 0 trades different prices.
    assert clean_sha[1] != tampered_sha[1] and clean_sha[2] != tampered_sha[2]
    assert clean["folds"][0]["net_pnl"] != tampered["folds"][0]["net_pnl"]


def test_bad_walk_forward_input_gets_one_line(tmp_path: Path) -> None:
    """No model to train, too little history for the folds, both modes at once: one line, exit 2, no Ray."""
    bars().head(4000).write_parquet(tmp_path / "bars.parquet")
    good = CONFIG.format(registry=tmp_path / "r", horizon=HORIZON, data=tmp_path / "bars.parquet", out=tmp_path / "o")
    no_model = re.sub(r"model:\n  \{.*\}\n", "model: null\n", good)
    no_model = re.sub(
        r"path: .*ModelThreshold\n    params: .*\n",
        "path: 'raytrade.strategy.builtins:BuyAndHold'\n    params: {qty: '1'}\n",
        no_model,
    )
    cases = [
        (no_model, [], "walk-forward trains the configured model; model is null"),
        (good.replace("min_train_fraction: 0.4", "min_train_fraction: 0.01"), [], "are too few for 3 folds"),
        (good, ["--sweep", "sweep.yaml"], "give --sweep or --walk-forward, not both"),
    ]
    for n, (text, extra, message) in enumerate(cases):
        config = tmp_path / f"wf{n}.yaml"
        config.write_text(text)
        result = subprocess.run(
            [RAYTRADE, "backtest", "--walk-forward", "--config", str(config), *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "o").exists()
