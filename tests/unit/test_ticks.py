from __future__ import annotations

import json

import pytest

from raytrade.domain.ticks import MAX_MESSAGE_BYTES, Rejection, RejectReason, Tick, TickValidator, encode_tick

TS = 1_672_531_200_000_000_000


def msg(**fields: object) -> bytes:
    base: dict[str, object] = {"symbol": "BTCUSDT", "price": 20000.5, "size": 0.1, "ts": TS}
    base.update(fields)
    return json.dumps(base).encode()


@pytest.fixture
def v() -> TickValidator:
    return TickValidator({"BTCUSDT", "ETHUSDT"})


def test_accepts_a_good_tick_and_round_trips_encoding(v: TickValidator) -> None:
    t = Tick("BTCUSDT", 20000.5, 0.1, TS)
    assert v.validate(encode_tick(t), b"BTCUSDT") == t


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"symbol": "BTCUSDT", "price": 2', RejectReason.BAD_JSON),  # truncated
        (b"\xff\xfe not utf8", RejectReason.BAD_JSON),
        (b"[1, 2, 3]", RejectReason.NOT_AN_OBJECT),
        (b'{"symbol": "BTCUSDT", "price": 1.0, "size": 1.0}', RejectReason.MISSING_FIELD),
        (msg(price="20000"), RejectReason.BAD_TYPE),
        (msg(price=True), RejectReason.BAD_TYPE),
        (msg(ts=1.5e18), RejectReason.BAD_TYPE),
        (msg(symbol=42), RejectReason.BAD_TYPE),
        (msg(price=float("nan")), RejectReason.NON_FINITE),  # json.dumps writes NaN
        (msg(size=float("inf")), RejectReason.NON_FINITE),
        (msg(price=-1.0), RejectReason.NON_POSITIVE_PRICE),
        (msg(price=0), RejectReason.NON_POSITIVE_PRICE),
        (msg(size=0.0), RejectReason.NON_POSITIVE_SIZE),
        (msg(price=1e300), RejectReason.OUT_OF_RANGE),
        (msg(ts=5), RejectReason.OUT_OF_RANGE),
        (msg(symbol="DOGEUSDT"), RejectReason.UNKNOWN_SYMBOL),
        (b"x" * (MAX_MESSAGE_BYTES + 1), RejectReason.OVERSIZE),
    ],
)
def test_rejects_bad_input_with_a_reason(v: TickValidator, raw: bytes, reason: RejectReason) -> None:
    out = v.validate(raw)
    assert isinstance(out, Rejection), out
    assert out.reason is reason
    assert out.detail  # says what was expected and what was found
    assert v.last_ts == {}  # a rejected message changes no state


def test_key_must_match_symbol(v: TickValidator) -> None:
    out = v.validate(msg(), b"ETHUSDT")
    assert isinstance(out, Rejection) and out.reason is RejectReason.KEY_MISMATCH


def test_out_of_order_is_rejected_but_equal_timestamps_pass(v: TickValidator) -> None:
    assert isinstance(v.validate(msg(ts=TS + 10)), Tick)
    assert isinstance(v.validate(msg(ts=TS + 10, size=0.2)), Tick)  # same ns: two trades may share a time
    late = v.validate(msg(ts=TS + 9))
    assert isinstance(late, Rejection) and late.reason is RejectReason.OUT_OF_ORDER
    assert v.last_ts["BTCUSDT"] == TS + 10
    assert isinstance(v.validate(msg(symbol="ETHUSDT", ts=TS)), Tick)  # order is per symbol


def test_bad_input_corpus_every_message_rejected_with_its_reason(v: TickValidator) -> None:
    from tests.bad_input import load_corpus

    assert v.validate(msg(ts=TS), b"BTCUSDT") == Tick("BTCUSDT", 20000.5, 0.1, TS)
    corpus = load_corpus(ts=TS + 1, old_ts=TS - 1)
    assert len(corpus) >= 40
    for m in corpus:
        got = v.validate(m.value, m.key)
        if m.reason is None:
            assert isinstance(got, Tick), m.name
        else:
            assert isinstance(got, Rejection), m.name
            assert got.reason.value == m.reason, (m.name, got)
            assert got.detail, m.name
    # The corpus exercises every rejection reason there is.
    assert {m.reason for m in corpus if m.reason} == {r.value for r in RejectReason}


def test_equal_timestamps_are_trades_unless_identical(v: TickValidator) -> None:
    assert isinstance(v.validate(msg(ts=TS)), Tick)
    assert isinstance(v.validate(msg(ts=TS, price=20001.0)), Tick)  # another trade at the same time
    dup = v.validate(msg(ts=TS, price=20001.0))
    assert isinstance(dup, Rejection) and dup.reason is RejectReason.DUPLICATE
    assert isinstance(v.validate(msg(ts=TS + 1, price=20001.0)), Tick)  # a later identical trade is fine
