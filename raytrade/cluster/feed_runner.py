"""The built-in producer of ``raytrade run``: the synthetic market or a file, published from a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from raytrade.adapters import kafka
from raytrade.adapters.feed import PublishCount, publish
from raytrade.adapters.kafka.rolling import RollingProducer
from raytrade.adapters.market_files import iter_ticks
from raytrade.adapters.synthetic_market import DEFAULT_SPECS, SymbolSpec, SyntheticMarket
from raytrade.cluster.config import RunConfig
from raytrade.cluster.ticks_log import TicksLog
from raytrade.domain.ticks import Tick

# Fewer, larger batches: the embedded broker's cost grows with the batches it holds (see
# adapters/kafka/rolling.py); 20 ms is invisible next to the market's one-minute bars.
FEED_LINGER_MS = 20


@dataclass
class Feed:
    """The producer thread and what it sent. ``external``: ticks come from elsewhere (``feed.source:
    none``), so the feed never ends by itself and the run trades until its duration or Ctrl-C."""

    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    count: PublishCount = field(default_factory=PublishCount)
    done: bool = False
    external: bool = False
    error: str | None = None

    def consumed_all(self, consumed: int) -> bool:
        """True once an own feed has ended and every tick it sent was consumed."""
        return not self.external and self.done and consumed >= self.count.sent


def synthetic_ticks(cfg: RunConfig) -> Iterator[Tick]:
    """The configured synthetic market: default dynamics for the configured instruments."""
    by_symbol = {s.instrument.symbol: s for s in DEFAULT_SPECS}
    specs = []
    for ic in cfg.instruments:
        base = by_symbol.get(ic.symbol)
        if base is None:
            base = SymbolSpec(ic.instrument(), 100.0)
        specs.append(
            SymbolSpec(ic.instrument(), base.start_price, base.annual_vol, base.trades_per_second, base.mean_size)
        )
    return SyntheticMarket(tuple(specs), seed=cfg.feed.seed).ticks(cfg.feed.simulated_seconds)


def start_feed(cfg: RunConfig, log: TicksLog) -> Feed:
    """Start publishing the configured feed to ``log`` in a thread (nothing for ``feed.source: none``)."""
    if cfg.feed.source == "none":
        return Feed(external=True)
    feed = Feed()
    if cfg.feed.source == "file":
        if not cfg.feed.path:
            raise ValueError("feed.path is required when feed.source = file")
        ticks: Iterator[Tick] = iter_ticks(cfg.feed.path)
    else:
        ticks = synthetic_ticks(cfg)

    def work() -> None:
        producer: kafka.Producer = kafka.producer(log.backend, log.bootstrap, linger_ms=FEED_LINGER_MS)
        admin = None
        if log.rolling:
            admin = kafka.admin(log.backend, log.bootstrap)
            assert cfg.kafka.roll_records is not None
            producer = RollingProducer(producer, admin, log.topic, log.partitions, cfg.kafka.roll_records)
        try:
            publish(ticks, producer, log.topic, rate=cfg.feed.rate, stop=feed.stop, count=feed.count)
        except Exception as exc:  # reported in the summary and on the console
            feed.error = f"{type(exc).__name__}: {exc}"
        finally:
            del producer  # release the client's connections before the broker stops
            if admin is not None:
                admin.close()
            feed.done = True

    feed.thread = threading.Thread(target=work, name="raytrade-feed", daemon=True)
    feed.thread.start()
    return feed
