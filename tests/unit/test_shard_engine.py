from __future__ import annotations

from decimal import Decimal as D

import numpy as np

from raytrade.domain.bars import BAR_NS
from raytrade.domain.features import WARMUP_BARS
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import floor_to
from raytrade.domain.shard_engine import RawMessage, ShardEngine, ShardModel
from raytrade.domain.ticks import Tick, encode_tick
from raytrade.strategy.builtins import ModelThreshold

BTC = Instrument("BTCUSDT", D("0.01"), D("0.00001"))
T0 = 1_672_531_200 * 10**9


def momentum_rule(windows: np.ndarray) -> np.ndarray:
    """Probability of an up move from the last bar's return: a fixed, deterministic rule."""
    return np.where(windows[:, -1, 0] > 0, 0.9, 0.1)


momentum = ShardModel(momentum_rule)


def messages(prices: list[float]) -> list[RawMessage]:
    """One tick per minute at the given prices."""
    return [(0, i, b"BTCUSDT", encode_tick(Tick("BTCUSDT", p, 0.1, T0 + i * BAR_NS))) for i, p in enumerate(prices)]


def STRATEGIES() -> list[ModelThreshold]:  # noqa: N802
    return [ModelThreshold("m", {"long_above": 0.6, "short_below": 0.4, "order_notional": "10000"})]


def test_engine_trades_only_after_warm_up_and_batches_scoring() -> None:
    calls: list[int] = []

    def scorer(windows: np.ndarray) -> np.ndarray:
        calls.append(len(windows))
        return momentum_rule(windows)

    engine = ShardEngine(
        [BTC],
        STRATEGIES(),
        ShardModel(scorer),
    )
    prices = [20000.0 + (i % 7) * 10 for i in range(WARMUP_BARS + 10)]
    out = engine.process(messages(prices), ts_consumed=123)
    assert out.accepted == len(prices) and out.bars_closed == len(prices) - 1
    assert calls == [len(prices) - WARMUP_BARS]  # one scoring call for the whole batch
    assert out.intents, "a momentum rule on a zig-zag should trade"
    # Intents within one batch build on each other: the position flips between +-1 unit, never beyond.
    pos = D(0)
    for intent in out.intents:
        pos += intent.signed_qty
        assert abs(pos) == floor_to(D("10000") / intent.ref_price, BTC.size_increment)  # exactly one unit
        assert intent.ts_consumed == 123 and intent.order_id.startswith("m:BTCUSDT:0:")
    engine.sync({"BTCUSDT": pos - D("0.1")}, {"BTCUSDT": D("0.1")}, D(90_000))  # Execution's view wins
    assert engine.positions["BTCUSDT"] == pos and engine.equity == D(90_000)


def test_engine_never_scores_or_trades_bad_messages() -> None:
    engine = ShardEngine([BTC], STRATEGIES(), momentum)
    good = messages([20000.0 + i for i in range(WARMUP_BARS + 3)])
    bad: list[RawMessage] = [
        (0, 900, b"BTCUSDT", b'{"symbol":"BTCUSDT","price":NaN,"size":1,"ts":%d}' % (T0 + 10**15)),
        (0, 901, b"BTCUSDT", b"not json"),
    ]
    out = engine.process([*good[:5], *bad, *good[5:]], ts_consumed=0)
    assert sorted(r.rejection.reason.value for r in out.rejected) == ["bad_json", "non_finite"]
    assert engine.rejected_by_reason == {"bad_json": 1, "non_finite": 1}
    assert all(int(i.order_id.rsplit(":", 1)[1]) < 900 for i in out.intents)
    assert engine.last_price["BTCUSDT"] == 20000.0 + WARMUP_BARS + 2
