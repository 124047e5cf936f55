"""Position sizing, selectable by config name, and volatility/RSI-adaptive entry thresholds.

Every sizer turns :class:`SizingInputs` into a non-negative notional in quote currency (``Decimal``); the caller
converts it to a quantity (``notional / price`` floored to the instrument's increment). Float parameters and inputs
enter the ``Decimal`` arithmetic through their shortest ``repr``, so ``0.1`` is exactly ``Decimal("0.1")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal, InvalidOperation, localcontext
from numbers import Real
from typing import Any, ClassVar, Protocol

from raytrade.domain.money import MONEY_CONTEXT, ZERO

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class SizingInputs:
    """What a sizer sees for one decision.

    ``score`` is the model's P(up) in [0, 1]; ``direction`` is +1 (long) or -1 (short); ``vol_per_bar`` is the
    forecast standard deviation of the next one-bar log return (GARCH sigma or realized), if any.
    """

    equity: Decimal
    price: Decimal
    score: float
    direction: int
    vol_per_bar: float | None = None


def _dec(value: float) -> Decimal:
    """A finite float as the ``Decimal`` of its shortest repr."""
    return Decimal(repr(float(value)))


def _finite(value: float) -> bool:
    """True for a real finite number (bools excluded; numpy scalars such as ``float32`` included)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_inputs(x: SizingInputs) -> None:
    """Raise ``ValueError`` unless equity and price are positive and score/direction/vol are well formed."""
    for label, value in (("equity", x.equity), ("price", x.price)):
        if not isinstance(value, Decimal) or not value.is_finite() or value <= ZERO:
            raise ValueError(f"{label} must be a positive finite Decimal, found {value!r}")
    if not (_finite(x.score) and 0.0 <= x.score <= 1.0):
        raise ValueError(f"score must be a probability in [0, 1], found {x.score!r}")
    if not isinstance(x.direction, int) or isinstance(x.direction, bool) or x.direction not in (1, -1):
        raise ValueError(f"direction must be +1 (long) or -1 (short), found {x.direction!r}")
    if x.vol_per_bar is not None and not (_finite(x.vol_per_bar) and x.vol_per_bar >= 0.0):
        raise ValueError(f"vol_per_bar must be a finite number >= 0 or None, found {x.vol_per_bar!r}")


class Sizer(Protocol):
    """A position sizer: ``name`` is its config key, ``notional`` its answer in quote currency (>= 0)."""

    name: ClassVar[str]

    def notional(self, x: SizingInputs) -> Decimal:
        """Quote-currency notional to hold for these inputs."""
        ...


def _require(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``."""
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class FixedNotional:
    """Always ``amount`` of notional, whatever the equity or the signal (config key ``notional``)."""

    name: ClassVar[str] = "fixed_notional"
    amount: Decimal

    def __post_init__(self) -> None:
        a = self.amount
        _require(isinstance(a, Decimal) and a.is_finite() and a > ZERO, f"notional must be a positive Decimal: {a!r}")

    def notional(self, x: SizingInputs) -> Decimal:
        """The configured amount."""
        check_inputs(x)
        return self.amount


@dataclass(frozen=True, slots=True)
class FixedFraction:
    """A fixed fraction of equity: ``fraction * equity`` with ``fraction`` in (0, 1]."""

    name: ClassVar[str] = "fixed_fraction"
    fraction: float

    def __post_init__(self) -> None:
        f = self.fraction
        _require(_finite(f) and 0.0 < f <= 1.0, f"fraction must be in (0, 1], found {f!r}")

    def notional(self, x: SizingInputs) -> Decimal:
        """``fraction * equity``."""
        check_inputs(x)
        with localcontext(MONEY_CONTEXT):
            return _dec(self.fraction) * x.equity


@dataclass(frozen=True, slots=True)
class Kelly:
    """Fractional Kelly on the model's win probability for the chosen direction.

    ``p = score`` for a long, ``1 - score`` for a short; ``f* = p - (1 - p) / payoff_ratio``;
    ``f = clamp(kelly_fraction * f*, 0, cap)``; notional ``f * equity`` (0 when the edge is negative).
    """

    name: ClassVar[str] = "kelly"
    payoff_ratio: float = 1.0
    kelly_fraction: float = 0.5
    cap: float = 0.25

    def __post_init__(self) -> None:
        b, k, c = self.payoff_ratio, self.kelly_fraction, self.cap
        _require(_finite(b) and b > 0.0, f"payoff_ratio must be > 0, found {b!r}")
        _require(_finite(k) and 0.0 < k <= 1.0, f"kelly_fraction must be in (0, 1], found {k!r}")
        _require(_finite(c) and 0.0 < c <= 1.0, f"cap must be in (0, 1], found {c!r}")

    def fraction(self, x: SizingInputs) -> Decimal:
        """The clamped fraction of equity to commit."""
        check_inputs(x)
        with localcontext(MONEY_CONTEXT):
            score = _dec(x.score)
            p = score if x.direction > 0 else ONE - score
            f = _dec(self.kelly_fraction) * (p - (ONE - p) / _dec(self.payoff_ratio))
            return ZERO if f <= ZERO else min(f, _dec(self.cap))  # no negative zero from a -0.0 score

    def notional(self, x: SizingInputs) -> Decimal:
        """``fraction * equity``."""
        f = self.fraction(x)
        with localcontext(MONEY_CONTEXT):
            return f * x.equity


@dataclass(frozen=True, slots=True)
class VolTarget:
    """Scale exposure so the position's annualized volatility hits ``annual_vol_target``.

    ``annual_vol = vol_per_bar * sqrt(bars_per_year)`` (default: one-minute bars, 525 600 a year);
    notional ``equity * min(max_leverage, annual_vol_target / annual_vol)``.
    """

    name: ClassVar[str] = "vol_target"
    annual_vol_target: float
    bars_per_year: float = 525_600.0
    max_leverage: float = 1.0

    def __post_init__(self) -> None:
        t, n, m = self.annual_vol_target, self.bars_per_year, self.max_leverage
        _require(_finite(t) and t > 0.0, f"annual_vol_target must be > 0, found {t!r}")
        _require(_finite(n) and n > 0.0, f"bars_per_year must be > 0, found {n!r}")
        _require(_finite(m) and m > 0.0, f"max_leverage must be > 0, found {m!r}")

    def leverage(self, x: SizingInputs) -> Decimal:
        """``min(max_leverage, target / annual_vol)``."""
        check_inputs(x)
        if x.vol_per_bar is None or x.vol_per_bar <= 0.0:
            raise ValueError("vol_target needs a volatility forecast")
        with localcontext(MONEY_CONTEXT) as ctx:
            annual = _dec(x.vol_per_bar) * _dec(self.bars_per_year).sqrt(ctx)
            return min(_dec(self.max_leverage), _dec(self.annual_vol_target) / annual)

    def notional(self, x: SizingInputs) -> Decimal:
        """``equity * leverage``."""
        lev = self.leverage(x)
        with localcontext(MONEY_CONTEXT):
            return x.equity * lev


SizerClass = type[FixedNotional] | type[FixedFraction] | type[Kelly] | type[VolTarget]
SIZERS: Mapping[str, SizerClass] = {cls.name: cls for cls in (FixedNotional, FixedFraction, Kelly, VolTarget)}
# Config spells FixedNotional's ``amount`` "notional" (the attribute name is taken by the ``notional`` method).
_CONFIG_KEYS: Mapping[str, Mapping[str, str]] = {"fixed_notional": {"amount": "notional"}}


def _coerce(method: str, key: str, kind: str, value: object) -> Decimal | float:
    """Convert a config value to the field's type (``Decimal`` or ``float``) or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{method}: parameter {key!r} must be a number, found {value!r}")
    try:
        if kind == "Decimal":
            return _dec(value) if isinstance(value, float) else Decimal(str(value).strip())
        return float(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{method}: parameter {key!r} must be a number, found {value!r}") from None


def sizer_from(spec: Mapping[str, object]) -> Sizer:
    """Build a sizer from ``{"method": name, **params}``; unknown methods or bad params raise ``ValueError``.

    Methods and their params: ``fixed_notional`` (notional), ``fixed_fraction`` (fraction),
    ``kelly`` (payoff_ratio, kelly_fraction, cap), ``vol_target`` (annual_vol_target, bars_per_year, max_leverage).
    """
    method = spec.get("method")
    if not isinstance(method, str) or method not in SIZERS:
        raise ValueError(f"unknown sizing method {method!r}; valid methods: {', '.join(sorted(SIZERS))}")
    cls = SIZERS[method]
    config_key = _CONFIG_KEYS.get(method, {})
    attr_of = {config_key.get(f.name, f.name): f.name for f in fields(cls)}  # config key -> field name
    params = {k: v for k, v in spec.items() if k != "method"}
    unknown = sorted(set(params) - set(attr_of))
    if unknown:
        raise ValueError(f"{method}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(attr_of))}")
    required = {f.name for f in fields(cls) if f.default is MISSING}
    missing = sorted(k for k, attr in attr_of.items() if attr in required and k not in params)
    if missing:
        raise ValueError(f"{method}: missing parameter(s) {', '.join(missing)}; valid: {', '.join(sorted(attr_of))}")
    types = {f.name: str(f.type) for f in fields(cls)}
    kwargs: dict[str, Any] = {attr_of[k]: _coerce(method, k, types[attr_of[k]], v) for k, v in params.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{method}: {exc}") from None


@dataclass(frozen=True, slots=True)
class AdaptiveThresholds:
    """Entry thresholds on the model score that widen with volatility and switch off against RSI extremes.

    Rule (all probabilities, for a strategy that goes long on ``score > long`` and short on ``score < short``):

    * Volatility: the half-widths of the no-trade band around 0.5, ``long_above - 0.5`` and ``0.5 - short_below``,
      are multiplied by ``1 + vol_k * max(0, vol / vol_ref - 1)`` and the results clamped into [0, 1]; at or below
      ``vol_ref`` (same units as ``vol``, e.g. per-bar sigma) the base thresholds apply.
    * RSI: ``rsi > rsi_overbought`` sets ``long`` to 1.0 (no score exceeds 1, so no new longs);
      ``rsi < rsi_oversold`` sets ``short`` to 0.0 (no score is below 0, so no new shorts).
    * ``None`` for ``vol`` or ``rsi`` leaves that adjustment out.
    """

    long_above: float
    short_below: float
    vol_ref: float
    vol_k: float = 0.5
    rsi_overbought: float = 70.0
    rsi_oversold: float = 30.0

    def __post_init__(self) -> None:
        lo, hi = self.short_below, self.long_above
        _require(
            _finite(lo) and _finite(hi) and 0.0 <= lo <= 0.5 <= hi <= 1.0,
            f"need 0 <= short_below <= 0.5 <= long_above <= 1, found {lo!r}, {hi!r}",
        )
        _require(_finite(self.vol_ref) and self.vol_ref > 0.0, f"vol_ref must be > 0, found {self.vol_ref!r}")
        _require(_finite(self.vol_k) and self.vol_k >= 0.0, f"vol_k must be >= 0, found {self.vol_k!r}")
        os_, ob = self.rsi_oversold, self.rsi_overbought
        _require(
            _finite(os_) and _finite(ob) and 0.0 <= os_ < ob <= 100.0,
            f"need 0 <= rsi_oversold < rsi_overbought <= 100, found {os_!r}, {ob!r}",
        )

    def widening(self, vol: float | None) -> float:
        """The factor applied to the band half-widths: ``1 + vol_k * max(0, vol / vol_ref - 1)``; 1 for ``None``."""
        if vol is None:
            return 1.0
        if not (_finite(vol) and vol >= 0.0):
            raise ValueError(f"vol must be a finite number >= 0 or None, found {vol!r}")
        return 1.0 + self.vol_k * max(0.0, vol / self.vol_ref - 1.0)

    def thresholds(self, vol: float | None, rsi: float | None) -> tuple[float, float]:
        """``(long_above, short_below)`` for the current volatility and RSI."""
        factor = self.widening(vol)
        long_above = min(1.0, 0.5 + factor * (self.long_above - 0.5))
        short_below = max(0.0, 0.5 - factor * (0.5 - self.short_below))
        if rsi is not None:
            if not (_finite(rsi) and 0.0 <= rsi <= 100.0):
                raise ValueError(f"rsi must be in [0, 100] or None, found {rsi!r}")
            if rsi > self.rsi_overbought:
                long_above = 1.0
            if rsi < self.rsi_oversold:
                short_below = 0.0
        return long_above, short_below
