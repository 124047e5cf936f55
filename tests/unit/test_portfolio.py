from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from raytrade.domain.orders import Fill, Side
from raytrade.domain.portfolio import Portfolio


def fill(n: int, side: Side, qty: str, price: str, fee: str = "0", symbol: str = "BTC") -> Fill:
    return Fill(f"f{n}", f"o{n}", symbol, side, D(qty), D(price), D(fee), n)


def test_fifo_realized_pnl_long_then_flip_short() -> None:
    p = Portfolio(D("1000"))
    p.apply(fill(1, Side.BUY, "1", "100", "0.1"))
    p.apply(fill(2, Side.BUY, "1", "110", "0.1"))
    p.apply(fill(3, Side.SELL, "3", "120", "0.3"))  # closes 100 then 110, opens 1 short at 120
    assert p.realized == D("30")  # (120-100) + (120-110)
    assert p.position("BTC") == D("-1")
    assert p.fees == D("0.5")
    assert p.cash == D("1000") - D("210") + D("360") - D("0.5")
    assert p.unrealized({"BTC": D("115")}) == D("5")
    assert p.equity({"BTC": D("115")}) - p.initial_cash == p.realized + D("5") - p.fees


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals(min_value=D("0.001"), max_value=D("50"), places=3),
        st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2),
        st.decimals(min_value=D("0"), max_value=D("3"), places=8),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(fills_strategy, st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2))
def test_pnl_identity_is_exact_for_any_fill_sequence(rows: list[tuple[str, Side, D, D, D]], mark: D) -> None:
    p = Portfolio(D("100000"))
    for i, (sym, side, qty, price, fee) in enumerate(rows):
        p.apply(fill(i, side, str(qty), str(price), str(fee), sym))
    marks = {"A": mark, "B": mark}
    assert p.equity(marks) - p.initial_cash == p.realized + p.unrealized(marks) - p.fees
    for sym in ("A", "B"):
        net = sum((q if s is Side.BUY else -q for (sy, s, q, _, _) in rows if sy == sym), D(0))
        assert p.position(sym) == net
    replay = Portfolio.from_fills(
        D("100000"), [fill(i, s, str(q), str(pr), str(f), sy) for i, (sy, s, q, pr, f) in enumerate(rows)]
    )
    assert (replay.cash, replay.realized, replay.fees) == (p.cash, p.realized, p.fees)
