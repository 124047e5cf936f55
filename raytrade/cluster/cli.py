"""The ``raytrade`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterator, Sequence

from raytrade.adapters import kafka
from raytrade.adapters.feed import publish
from raytrade.adapters.market_files import iter_ticks
from raytrade.cluster.config import ConfigError, load_config
from raytrade.domain.ticks import Tick


def _run(args: argparse.Namespace) -> int:
    from raytrade.cluster.run import run

    cfg = load_config(args.config)
    summary = run(cfg, args.duration)
    if not summary:
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    if summary.get("interrupted"):
        return 130  # the shell's convention for SIGINT
    bad = summary.get("shard_errors") or summary.get("feed_error")
    return 1 if bad else 0


def _produce(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    bootstrap = args.bootstrap or cfg.kafka.bootstrap_servers
    if not bootstrap:
        print("raytrade produce: no broker: pass --bootstrap host:port or set kafka.bootstrap_servers", file=sys.stderr)
        return 2
    backend = args.backend or cfg.kafka.backend
    topic = args.topic or cfg.kafka.topic
    adm = kafka.admin(backend, bootstrap)
    adm.create_topic(topic, cfg.kafka.partitions)
    adm.close()
    if args.file:
        ticks: Iterator[Tick] = iter_ticks(args.file)
    else:
        from raytrade.cluster.run import synthetic_ticks

        ticks = synthetic_ticks(cfg)
    producer = kafka.producer(backend, bootstrap)
    sent = publish(ticks, producer, topic, rate=args.rate, stop=threading.Event(), limit=args.limit)
    print(json.dumps({"topic": topic, "bootstrap_servers": bootstrap, "sent": sent}))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="raytrade", description="Ray-based distributed AI trading engine")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole system and trade paper (embedded default)")
    r.add_argument("--config", default="configs/default.yaml", help="YAML config (default: %(default)s)")
    r.add_argument("--duration", type=float, default=60.0, help="seconds to trade (default: %(default)s)")
    r.set_defaults(func=_run)
    pr = sub.add_parser("produce", help="publish the synthetic market or a Parquet/CSV file to the ticks topic")
    pr.add_argument("--config", default="configs/default.yaml")
    pr.add_argument("--bootstrap", help="Kafka host:port (default: kafka.bootstrap_servers)")
    pr.add_argument("--backend", choices=kafka.BACKENDS, help="Kafka client (default: kafka.backend)")
    pr.add_argument("--topic", help="topic (default: kafka.topic)")
    pr.add_argument("--file", help="Parquet/CSV of ticks or 1-minute bars; default: the synthetic market")
    pr.add_argument("--rate", type=float, default=None, help="ticks per second (default: as fast as possible)")
    pr.add_argument("--limit", type=int, default=None, help="stop after this many ticks")
    pr.set_defaults(func=_produce)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raytrade`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"raytrade: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
