"""The strategy API: loading by path, params validation, the context's actions and ids, snapshots,
the built-ins, failures (stop or disable), and the example user strategy outside the package."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raytrade.cluster.config import ConfigError, load_config
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.features import WARMUP_BARS
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.order_lifecycle import EventKind, OrderEvent
from raytrade.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from raytrade.domain.shard_engine import BarRow, ShardEngine, ShardModel
from raytrade.domain.strategy import ThresholdStrategy
from raytrade.strategy import Strategy, StrategyError, StrategyParams, StrategySpec, load_strategies
from raytrade.strategy.base import StrategyFailedError
from raytrade.strategy.builtins import BuyAndHold, ModelThreshold, SmaCross
from raytrade.strategy.builtins.sma_cross import relation
from tests.unit.test_shard_engine import BTC, T0, messages, momentum

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/strategies/bollinger_reversion.py:BollingerReversion"
ETH = Instrument("ETHUSDT", D("0.01"), D("0.0001"))


def bars(closes: list[float], symbol: str = "BTCUSDT", start: int = 0) -> list[BarRow]:
    """One-minute bars at ``closes`` (open = previous close), offsets from ``start``."""
    out: list[BarRow] = []
    prev = closes[0]
    for n, c in enumerate(closes):
        b = Bar(T0 + (start + n) * BAR_NS, prev, max(prev, c) * 1.001, min(prev, c) * 0.999, c, 5.0)
        out.append((0, start + n, symbol, b))
        prev = c
    return out


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon_here", "must look like 'package.module:Class'"),
        ("raytrade.nowhere:Thing", "cannot import 'raytrade.nowhere'"),
        ("raytrade.strategy.builtins:Missing", "has no class 'Missing'"),
        ("raytrade.domain.bars:Bar", "Bar is not a raytrade.strategy.Strategy subclass"),
        ("examples/strategies/nope.py:X", "no such file"),
    ],
)
def test_bad_paths_fail_with_the_path_in_the_message(path: str, message: str) -> None:
    with pytest.raises(StrategyError, match="strategies\\[0\\]") as err:
        load_strategies([StrategySpec("s", path)])
    assert message in str(err.value) and path in str(err.value) and "\n" not in str(err.value)


def test_params_are_validated_by_the_class_and_unknown_keys_are_refused() -> None:
    with pytest.raises(StrategyError, match="SmaCross\\) params: fats: Extra inputs are not permitted"):
        load_strategies([StrategySpec("s", "raytrade.strategy.builtins:SmaCross", {"fats": 3, "qty": "1"})])
    with pytest.raises(StrategyError, match="fast \\(30\\) must be < slow \\(10\\)"):
        load_strategies([StrategySpec("s", "raytrade.strategy.builtins:SmaCross", {"fast": 30, "slow": 10, "qty": 1})])
    with pytest.raises(StrategyError, match="used twice"):
        load_strategies([StrategySpec("a", "raytrade.strategy.builtins:BuyAndHold", {"qty": 1})] * 2)
    with pytest.raises(StrategyError, match="id 'a:b'"):
        load_strategies([StrategySpec("a:b", "raytrade.strategy.builtins:BuyAndHold", {"qty": 1})])


def test_config_errors_name_the_strategy_and_old_sections_are_explained(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "instruments: [{symbol: BTCUSDT, price_increment: '0.01', size_increment: '0.00001'}]\n"
        "strategies: [{id: x, path: 'raytrade.strategy.builtins:Nope'}]\n"
    )
    with pytest.raises(ConfigError, match=r"strategies.*has no class 'Nope'"):
        load_config(cfg)
    cfg.write_text(
        "instruments: [{symbol: BTCUSDT, price_increment: '0.01', size_increment: '0.00001'}]\n"
        "strategies: [{id: x, path: 'raytrade.strategy.builtins:ModelThreshold'}]\nmodel: null\n"
    )
    with pytest.raises(ConfigError, match="need a model score"):
        load_config(cfg)
    cfg.write_text("instruments: [{symbol: A, price_increment: '1', size_increment: '1'}]\nstrategy: {name: x}\n")
    with pytest.raises(ConfigError, match="'strategy' section is now 'strategies'"):
        load_config(cfg)


def test_environment_overrides_reach_into_the_strategy_list() -> None:
    cfg = load_config(REPO / "configs" / "default.yaml", env={"RAYTRADE__STRATEGIES__0__PARAMS__LONG_ABOVE": "0.6"})
    assert cfg.strategies[0].params["long_above"] == 0.6
    with pytest.raises(ConfigError, match="not an index"):
        load_config(REPO / "configs" / "default.yaml", env={"RAYTRADE__STRATEGIES__5__ID": "x"})


def test_the_example_user_strategy_loads_by_file_path_from_outside_the_package(monkeypatch: Any) -> None:
    monkeypatch.chdir(REPO)
    [s] = load_strategies([StrategySpec("bb", EXAMPLE, {"qty": "0.05"})])
    assert type(s).__name__ == "BollingerReversion" and s.id == "bb"
    assert not type(s).__module__.startswith("raytrade.")
    with pytest.raises(StrategyError, match="qty: Field required"):
        load_strategies([StrategySpec("bb", EXAMPLE, {})])


# -- the context: actions, ids, positions ---------------------------------------------------


class Scripted(Strategy):
    """Does what ``script`` says on the n-th bar (n from 0): a test double of a user strategy."""

    def __init__(self, strategy_id: str, script: Mapping[int, Any]) -> None:
        super().__init__(strategy_id)
        self.script = script
        self.n = -1
        self.seen: list[tuple[str, float | None, int]] = []
        self.events: list[OrderEvent] = []

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        self.n += 1
        self.seen.append((symbol, score, self.ctx.time))
        action = self.script.get(self.n)
        if action is not None:
            action(self.ctx)

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)


def test_actions_become_intents_and_commands_with_deterministic_ids() -> None:
    def act(ctx: Any) -> None:
        assert ctx.target_position("BTCUSDT", D("0.3")) == "s:BTCUSDT:0:2"
        assert ctx.target_position("BTCUSDT", D("0.3")) is None  # already there (with the working order)
        oid = ctx.order(
            "BTCUSDT", Side.SELL, D("0.1"), OrderType.LIMIT, limit_price=D("20100.004"), tif=TimeInForce.DAY
        )
        assert oid == "s:BTCUSDT:0:2.1"
        ctx.replace(oid, qty=D("0.05"))
        ctx.cancel("s:BTCUSDT:0:2")
        with pytest.raises(ValueError, match="cancel and send a new order to add"):
            ctx.replace(oid, qty=D("1"))
        with pytest.raises(ValueError, match="unknown symbol 'DOGE'"):
            ctx.order("DOGE", Side.BUY, D(1))

    s = Scripted("s", {2: act})
    engine = ShardEngine([BTC], [s], None)
    out = engine.process_bars(bars([20000.0, 20010.0, 20020.0]))
    assert [i.order_id for i in out.intents] == ["s:BTCUSDT:0:2", "s:BTCUSDT:0:2.1"]
    buy, sell = out.intents
    assert (buy.side, buy.qty, buy.ref_price, buy.ts_event) == (Side.BUY, D("0.3"), D("20020.00"), T0 + 3 * BAR_NS)
    assert (sell.order_type, sell.limit_price, sell.tif) == (OrderType.LIMIT, D("20100.00"), TimeInForce.DAY)
    assert [(c.kind, c.order_id, c.qty) for c in out.commands] == [
        ("replace", "s:BTCUSDT:0:2.1", D("0.05")),
        ("cancel", "s:BTCUSDT:0:2", None),
    ]
    assert len({c.command_id for c in out.commands}) == 2
    # 0.3 bought, 0.1 sold and cut to 0.05, then the buy cancelled: -0.05 working.
    assert engine.positions["BTCUSDT"] == D("-0.05")
    assert [sym for sym, _, _ in s.seen] == ["BTCUSDT"] * 3 and all(score is None for _, score, _ in s.seen)


def test_strategies_see_prices_as_of_their_event_not_the_end_of_the_batch() -> None:
    seen: list[float | None] = []

    class Peek(Strategy):
        def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
            seen.append(self.ctx.price(symbol))

    engine = ShardEngine([BTC], [Peek("p")], None)
    prices = [20000.0 + i for i in range(6)]
    engine.process(messages(prices), 0)  # one batch: 5 bars close, each on the next minute's tick
    assert seen == prices[1:]


def test_events_reach_their_own_strategy_and_working_orders_follow_them() -> None:
    a = Scripted("a", {0: lambda ctx: ctx.order("BTCUSDT", Side.BUY, D("0.1"), OrderType.LIMIT, limit_price=D(1))})
    b = Scripted("b", {})
    engine = ShardEngine([BTC], [a, b], None)
    [intent] = engine.process_bars(bars([20000.0])).intents
    assert [o.status for o in a.ctx.working_orders()] == [OrderStatus.NEW]

    def event(kind: EventKind, status: OrderStatus, seq: int) -> OrderEvent:
        return OrderEvent(
            intent.order_id, seq, "BTCUSDT", Side.BUY, kind, status, D("0.1"), ZERO, D(1), None, "", None, "intake", 5
        )

    engine.deliver([event(EventKind.ACCEPTED, OrderStatus.ACCEPTED, 2)], [])
    assert [o.status for o in a.ctx.working_orders("BTCUSDT")] == [OrderStatus.ACCEPTED]
    engine.deliver([event(EventKind.CANCELLED, OrderStatus.CANCELLED, 3)], [])
    assert a.ctx.working_orders() == [] and [e.seq for e in a.events] == [2, 3] and b.events == []


def test_a_raising_strategy_stops_the_engine_or_is_disabled_without_its_orders() -> None:
    def boom(ctx: Any) -> None:
        ctx.order("BTCUSDT", Side.BUY, D("0.1"))
        raise ZeroDivisionError("my bug")

    with pytest.raises(
        StrategyFailedError, match=r"'s' raised in on_bar at event time .*ZeroDivisionError: my bug"
    ) as e:
        ShardEngine([BTC], [Scripted("s", {1: boom})], None).process_bars(bars([1.0, 2.0, 3.0]))
    assert isinstance(e.value.__cause__, ZeroDivisionError)

    ok = Scripted("ok", {2: lambda ctx: ctx.order("BTCUSDT", Side.BUY, D("0.1"))})
    engine = ShardEngine([BTC], [Scripted("s", {1: boom}), ok], None, disable_failing=True)
    out = engine.process_bars(bars([1.0, 2.0, 3.0]))
    assert [i.order_id for i in out.intents] == ["ok:BTCUSDT:0:2"]  # the failing call's order is dropped
    assert engine.positions["BTCUSDT"] == D("0.1") and "my bug" in engine.disabled["s"]
    assert [s.id for s in engine.strategies] == ["ok"]


def test_snapshots_carry_strategy_state_through_on_save_and_on_load() -> None:
    closes = [100.0 + math.sin(i / 3) * 5 for i in range(80)]
    spec = {"fast": 3, "slow": 8, "qty": "1"}
    straight = ShardEngine([BTC], [SmaCross("x", spec)], None)
    first = straight.process_bars(bars(closes[:40]))
    second = straight.process_bars(bars(closes[40:], start=40))
    crashed = ShardEngine([BTC], [SmaCross("x", spec)], None)
    assert crashed.process_bars(bars(closes[:40])).intents == first.intents
    restored = ShardEngine([BTC], [SmaCross("x", spec)], None)
    restored.restore(crashed.snapshot())
    again = restored.process_bars(bars(closes[40:], start=40))
    assert second.intents and again.intents == second.intents
    state = restored.strategies[0].on_save()
    assert state.startswith(b"{") and b"closes" in state  # JSON, not a pickle of private state


# -- built-ins --------------------------------------------------------------------------------


def test_model_threshold_decides_exactly_as_the_threshold_rule() -> None:
    rule = ThresholdStrategy("m", 0.6, 0.4, D("10000"), True)
    engine = ShardEngine([BTC], [ModelThreshold("m", {"long_above": 0.6, "short_below": 0.4})], momentum)
    prices = [20000.0 + ((i * 37) % 11 - 5) * 7 for i in range(WARMUP_BARS + 40)]
    out = engine.process(messages(prices), 123)
    position = D(0)
    expected = []
    # Bar n-1 (close prices[n-1]) closes on tick n, which prices the order; the rule reads its return.
    for n, p in enumerate(prices[WARMUP_BARS:], start=WARMUP_BARS):
        score = 0.9 if prices[n - 1] > prices[n - 2] else 0.1
        intent = rule.decide(
            BTC,
            score,
            position,
            D(repr(p)).quantize(D("0.01")),
            partition=0,
            offset=n,
            ts_event=T0 + n * BAR_NS,
            ts_consumed=123,
        )
        if intent is not None:
            position += intent.signed_qty
            expected.append(intent)
    assert out.intents and out.intents == expected


def test_model_threshold_gets_no_score_on_an_anomalous_bar() -> None:
    flagged = ShardModel(momentum.score, gate=lambda rows: np.ones(len(rows), dtype=bool))
    engine = ShardEngine([BTC], [ModelThreshold("m", {"long_above": 0.6, "short_below": 0.4})], flagged)
    out = engine.process(messages([20000.0 + i for i in range(WARMUP_BARS + 10)]), 0)
    assert out.intents == [] and engine.anomaly_blocked > 0


def test_sma_cross_ties_are_never_crosses() -> None:
    assert relation(1.0, 1.0 + 1e-12, 1e-9) == 0 and relation(1.1, 1.0, 1e-9) == 1 and relation(0.9, 1.0, 1e-9) == -1
    # fast/slow = 1/3: up, a tie, up again -> one entry at most, never a re-entry through the tie.
    s = SmaCross("x", {"fast": 1, "slow": 3, "qty": "1"})
    engine = ShardEngine([BTC], [s], None)
    out = engine.process_bars(bars([10.0, 10.0, 9.0, 12.0, 11.0, 11.0, 13.0, 8.0]))
    # SMA3 vs close: bar2 9<9.67 (-1), bar3 12>10.33 (+1, cross up), bar4 11=11 tie (0),
    # bar5 11>11.33? no: 11<11.33 (-1, cross down), bar6 13>11.67 (+1, up), bar7 8<10.67 (-1, down)
    assert [(i.order_id.split(":")[-1], i.side.value) for i in out.intents] == [
        ("3", "BUY"),
        ("5", "SELL"),
        ("6", "BUY"),
        ("7", "SELL"),
    ]


def test_buy_and_hold_buys_each_symbol_once() -> None:
    engine = ShardEngine([BTC, ETH], [BuyAndHold("bh", {"notional": "1000"})], None)
    rows = sorted(bars([20000.0, 21000.0]) + bars([1000.0, 900.0], "ETHUSDT"), key=lambda r: r[3].start)
    out = engine.process_bars(rows)
    assert [(i.symbol, i.qty) for i in out.intents] == [("BTCUSDT", D("0.05000")), ("ETHUSDT", D("1.0000"))]


def test_a_strategy_without_params_model_gets_the_empty_params() -> None:
    class Bare(Strategy):
        pass

    assert isinstance(Bare("b").params, StrategyParams) and Bare("b").requires_model is False
    with pytest.raises(Exception, match="Extra inputs"):
        Bare("b", {"x": 1})
