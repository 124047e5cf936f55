"""Request and response bodies of the gateway (validated; bad input is a 422 naming the field)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrade.domain.features import FEATURE_NAMES

N_FEATURES = len(FEATURE_NAMES)
MAX_WINDOW = 512
MAX_BARS = 2_000

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
FeatureVector = Annotated[list[Finite], Field(min_length=N_FEATURES, max_length=N_FEATURES)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bar(_Body):
    """One OHLCV bar (oldest first in a request)."""

    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _consistent(self) -> Bar:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError("bar must satisfy low <= open, close <= high")
        return self


class PredictRequest(_Body):
    """Either the model's last ``history`` feature vectors (oldest first) or raw recent bars."""

    features: Annotated[list[FeatureVector], Field(min_length=1, max_length=MAX_WINDOW)] | None = Field(
        None, description=f"Feature vectors of {N_FEATURES} values ({', '.join(FEATURE_NAMES)}), oldest first"
    )
    bars: Annotated[list[Bar], Field(min_length=1, max_length=MAX_BARS)] | None = Field(
        None, description="Recent 1-minute bars of one symbol, oldest first; features are computed from them"
    )

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        if (self.features is None) == (self.bars is None):
            raise ValueError("give exactly one of 'features' or 'bars'")
        return self


class PredictResponse(BaseModel):
    models: dict[str, float] = Field(description="Each member model's P(up)")
    score: float = Field(description="The ensemble's P(up)")
    anomaly: bool = Field(description="The anomaly gate flags the latest feature vector (trading would be blocked)")
    model_version: str


class PolicyRequest(_Body):
    features: FeatureVector
    position: Literal[-1, 0, 1] = Field(0, description="Current position in units: short, flat or long")


class PolicyResponse(BaseModel):
    action: Literal["short", "flat", "long"]
    target_position: int
    logits: list[float]
    model_version: str


def _price_field(description: str) -> Any:
    return Field(None, gt=0, max_digits=28, decimal_places=12, allow_inf_nan=False, description=description)


class OrderRequest(_Body):
    """A manual order (market, limit or stop); it passes the RiskGate like any other."""

    symbol: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._\-]+$")
    side: Literal["buy", "sell"]
    qty: Decimal = Field(gt=0, max_digits=28, decimal_places=12, allow_inf_nan=False)
    ref_price: Decimal | None = Field(
        None,
        gt=0,
        max_digits=28,
        decimal_places=12,
        allow_inf_nan=False,
        description="Reference price for the risk checks; empty = the last price of the symbol",
    )
    type: Literal["market", "limit", "stop"] = "market"
    tif: Literal["GTC", "IOC", "DAY"] = "GTC"
    limit_price: Decimal | None = _price_field("Limit price (type = limit)")
    stop_price: Decimal | None = _price_field("Stop price (type = stop)")

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderRequest:
        need = {"limit": "limit_price", "stop": "stop_price"}.get(self.type)
        for name in ("limit_price", "stop_price"):
            given = getattr(self, name) is not None
            if given != (name == need):
                raise ValueError(f"a {self.type} order {'needs' if name == need else 'takes no'} {name}")
        return self


class OrderResponse(BaseModel):
    order_id: str
    status: str
    reason: str
    filled_qty: str
    fills: list[dict[str, str]]


class ActivateRequest(_Body):
    model: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Registered model name; empty = the active signal model"
    )


class ActivateResponse(BaseModel):
    deployment: str
    model: str
    version: str
    previous: str | None
    replicas_updated: bool


class RevokeRequest(_Body):
    """Exactly one of a token id or a subject (every token the subject holds now)."""

    jti: str | None = Field(None, min_length=1, max_length=128, description="The token's id (its 'jti' claim)")
    subject: str | None = Field(None, min_length=1, max_length=128, description="Revoke all tokens of this subject")

    @model_validator(mode="after")
    def _one(self) -> RevokeRequest:
        if (self.jti is None) == (self.subject is None):
            raise ValueError("give exactly one of 'jti' or 'subject'")
        return self


class ErrorBody(BaseModel):
    detail: str | list[dict[str, Any]]
