"""``configs/sweep.yaml``: what a sweep varies (strategy params, symbol subsets, date ranges), how it
searches (grid or seeded random) and with what resources; expanded into a fixed list of runs."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raytrade.backtest.data import DataError, parse_time
from raytrade.backtest.session import absolute_paths
from raytrade.cluster.config import ConfigError, RunConfig, config_from_dict, raw_config
from raytrade.strategy.loader import strategy_class


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    """A random-search range: uniform in ``[low, high]`` (log-uniform with ``log``), rounded with ``integer``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _range(self) -> Distribution:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def draw(self, rng: np.random.Generator) -> float | int:
        u = float(rng.uniform(0.0, 1.0))
        if self.log:
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return round(x) if self.integer else x


class Period(_Strict):
    """A date range ``[start, end)`` (ISO date/time, UTC unless given)."""

    start: str | None = None
    end: str | None = None


class Resources(_Strict):
    """Ray resources of each run (one Ray task), and how many run at once."""

    num_cpus: float = Field(1.0, gt=0, description="CPUs a run reserves (its Ray task's num_cpus)")
    memory_mb: int | None = Field(None, ge=1, description="Memory a run reserves, MB (Ray task memory)")
    max_concurrent: int | None = Field(None, ge=1, description="Runs in flight at once (default: as the cluster fits)")
    local_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray started when no --address")


Values = list[Any] | Distribution


class SweepConfig(_Strict):
    """A sweep: ``base`` (a backtest config) varied by ``params``, ``symbols`` and ``periods``."""

    base: str = Field(description="The backtest config every run starts from (relative to the sweep file)")
    search: Literal["grid", "random"] = "grid"
    samples: int = Field(8, ge=1, description="Runs of a random search")
    seed: int = Field(0, description="Seed of a random search")
    params: dict[str, dict[str, Values]] = Field(
        default_factory=dict, description="Per strategy id: param -> list of values (grid) or a range (random)"
    )
    symbols: list[list[str]] | None = Field(None, description="Symbol subsets; each run trades one (default: all)")
    periods: list[Period] | None = Field(None, description="Date ranges; each run covers one (default: the base's)")
    data: str | None = Field(None, description="Market data (default: the base's backtest.data)")
    resources: Resources = Resources()
    output_dir: str = Field("runs/sweep", description="results.parquet, sweep.html and runs/<id>/ per run")
    metric: str = Field("sharpe", description="The metric sweep.html plots and sorts by")

    @model_validator(mode="after")
    def _grid(self) -> SweepConfig:
        if self.search == "grid":
            for sid, params in self.params.items():
                for name, values in params.items():
                    if isinstance(values, Distribution):
                        raise ValueError(f"params.{sid}.{name}: a grid takes a list of values, not a range")
        for sid, params in self.params.items():
            for name, values in params.items():
                if isinstance(values, list) and not values:
                    raise ValueError(f"params.{sid}.{name}: no values")
        return self


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id, the params it sets, its symbols and its dates."""

    run_id: str
    params: dict[str, dict[str, Any]]
    symbols: tuple[str, ...] | None
    start: str | None
    end: str | None

    def row(self) -> dict[str, Any]:
        """The run's coordinates as table columns (``<strategy>.<param>``, symbols, start, end)."""
        out: dict[str, Any] = {"run_id": self.run_id}
        for sid, params in sorted(self.params.items()):
            for name, value in sorted(params.items()):
                out[f"{sid}.{name}"] = value
        out["symbols"] = ",".join(self.symbols) if self.symbols else "all"
        out["start"], out["end"] = self.start or "", self.end or ""
        return out


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep: its config, the validated base config (and raw mapping) and where it lives."""

    config: SweepConfig
    base: RunConfig
    base_raw: dict[str, Any]
    path: Path

    def runs(self) -> list[RunSpec]:
        """Every run, in a fixed order (the same sweep gives the same list)."""
        sc = self.config
        subsets: list[tuple[str, ...] | None] = [tuple(s) for s in sc.symbols] if sc.symbols else [None]
        periods = [(p.start, p.end) for p in sc.periods] if sc.periods else [(None, None)]
        keys = [(sid, name) for sid, params in sorted(sc.params.items()) for name in sorted(params)]
        specs: list[tuple[dict[str, dict[str, Any]], tuple[str, ...] | None, tuple[str | None, str | None]]] = []
        if sc.search == "grid":
            lists = [sc.params[sid][name] for sid, name in keys]
            for combo in itertools.product(*lists, subsets, periods):
                specs.append((_nest(keys, combo[: len(keys)]), combo[-2], combo[-1]))
        else:
            rng = np.random.default_rng(sc.seed)
            for _ in range(sc.samples):
                values = [_draw(sc.params[sid][name], rng) for sid, name in keys]
                subset = subsets[int(rng.integers(len(subsets)))]
                period = periods[int(rng.integers(len(periods)))]
                specs.append((_nest(keys, values), subset, period))
        return [RunSpec(f"r{n:04d}", p, s, d[0], d[1]) for n, (p, s, d) in enumerate(specs)]

    def run_config(self, run: RunSpec) -> dict[str, Any]:
        """The raw config of one run (validated by the run itself, so a bad combination fails only that run)."""
        raw = copy.deepcopy(self.base_raw)
        for sid, params in run.params.items():
            entry = next(e for e in raw["strategies"] if e.get("id") == sid)
            entry["params"] = {**(entry.get("params") or {}), **params}
        if run.symbols is not None:
            raw["instruments"] = [i for i in raw["instruments"] if i.get("symbol") in run.symbols]
        backtest = raw.setdefault("backtest", {})
        if run.start is not None:
            backtest["start"] = run.start
        if run.end is not None:
            backtest["end"] = run.end
        if self.config.data is not None:
            backtest["data"] = self.config.data
        return raw


def _nest(keys: list[tuple[str, str]], values: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (sid, name), value in zip(keys, values, strict=True):
        out.setdefault(sid, {})[name] = value
    return out


def _draw(values: Values, rng: np.random.Generator) -> Any:
    if isinstance(values, Distribution):
        return values.draw(rng)
    return values[int(rng.integers(len(values)))]


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file and its base config; :class:`ConfigError` (one line per problem) if bad."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"sweep file {file}: no such file")
    loaded = yaml.safe_load(file.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"sweep file {file}: expected a mapping at the top level")
    try:
        sc = SweepConfig.model_validate(loaded)
    except ValidationError as exc:
        e = exc.errors()[0]
        where, msg = ".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(
            f"invalid sweep {file}: {where}: {msg}{more}" if where else f"invalid sweep {file}: {msg}"
        ) from None
    base_path = (file.parent / sc.base).resolve()
    if not base_path.is_file():
        raise ConfigError(f"invalid sweep {file}: base: no such config {base_path}")
    raw = raw_config(base_path)
    base = config_from_dict(copy.deepcopy(raw), base_path)
    raw["strategies"] = [e.model_dump() for e in base.strategies]  # import paths resolved (file paths absolute)
    ids = {e.id: e for e in base.strategies}
    for sid, params in sc.params.items():
        if sid not in ids:
            raise ConfigError(f"invalid sweep {file}: params: no strategy {sid!r} in {base_path} (have {sorted(ids)})")
        fields = strategy_class(ids[sid].path).Params.model_fields
        unknown = sorted(set(params) - set(fields))
        if unknown:  # a typo would fail every run: one line now, not a table of failures
            raise ConfigError(
                f"invalid sweep {file}: params.{sid}: unknown {unknown} (the class takes {sorted(fields)})"
            )
    for n, period in enumerate(sc.periods or []):
        for name in ("start", "end"):
            value = getattr(period, name)
            if value is not None:
                try:
                    parse_time(value, name)
                except DataError as exc:
                    raise ConfigError(f"invalid sweep {file}: periods[{n}].{name}: {exc}") from None
    known = {i.symbol for i in base.instruments}
    for subset in sc.symbols or []:
        unknown = sorted(set(subset) - known)
        if unknown or not subset:
            raise ConfigError(f"invalid sweep {file}: symbols: {unknown or 'an empty subset'} not in {sorted(known)}")
    if sc.data is not None and "://" not in sc.data:  # as the base's data: one path for every worker
        sc = sc.model_copy(update={"data": str(Path(sc.data).resolve())})
    return Sweep(sc, base, absolute_paths(raw), file)
