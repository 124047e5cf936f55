"""The ``raytrade`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from raytrade.adapters import kafka
from raytrade.adapters.feed import publish
from raytrade.adapters.market_files import iter_ticks
from raytrade.cluster.config import ConfigError, load_config
from raytrade.domain.ticks import Tick
from raytrade.training.registry import RegistryError


def _run(args: argparse.Namespace) -> int:
    from raytrade.cluster.run import run

    cfg = load_config(args.config)
    if args.serve:
        cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"enabled": True})})
    if cfg.serve.enabled:
        from raytrade.deployments.auth import secret_from_env

        secret_from_env()  # fail now, not after the engine is up
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
        from raytrade.cluster.feed_runner import synthetic_ticks

        ticks = synthetic_ticks(cfg)
    producer = kafka.producer(backend, bootstrap)
    sent = publish(ticks, producer, topic, rate=args.rate, stop=threading.Event(), limit=args.limit)
    print(json.dumps({"topic": topic, "bootstrap_servers": bootstrap, "sent": sent}))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    pairs = {
        "data.source": getattr(args, "data", None),
        "data.horizon_bars": getattr(args, "horizon", None),
        "registry": getattr(args, "registry", None),
        "output_dir": getattr(args, "output", None),
        "storage_path": getattr(args, "storage_path", None),
    }
    if getattr(args, "approve", False):
        pairs["approve"] = True
    return {k: v for k, v in pairs.items() if v is not None}


def _train(args: argparse.Namespace) -> int:
    from raytrade.training.train import train
    from raytrade.training.train_config import TrainConfig, load_yaml

    cfg = load_yaml(args.config, TrainConfig, _overrides(args))
    report = train(cfg, log=lambda line: print(line, file=sys.stderr))
    print((Path(report["report_dir"]) / "report.md").read_text())
    return 0


def _tune(args: argparse.Namespace) -> int:
    from raytrade.training.train_config import load_yaml
    from raytrade.training.tune_config import TuneConfig
    from raytrade.training.tune_sweep import run_sweep

    cfg = load_yaml(args.config, TuneConfig, _overrides(args))
    print(json.dumps(run_sweep(cfg, log=lambda line: print(line, file=sys.stderr)), indent=2, sort_keys=True))
    return 0


def _rl(args: argparse.Namespace) -> int:
    import ray

    from raytrade.training.registry import ModelRegistry
    from raytrade.training.rl.agent import train_agent

    ray.init(
        num_cpus=args.num_cpus, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False
    )
    try:
        train = {"iterations": args.iterations, "train_batch_size": args.batch, "seed": args.seed}
        summary = train_agent({"days": args.days}, train, ModelRegistry(args.registry), approve=args.approve)
    finally:
        ray.shutdown()
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _models(args: argparse.Namespace) -> int:
    from raytrade.training.registry import ModelRegistry

    reg = ModelRegistry(args.registry)
    if args.action == "approve":
        if not args.name or not args.version:
            print("raytrade models approve NAME VERSION", file=sys.stderr)
            return 2
        reg.approve(args.name, args.version)
    rows = []
    for name in reg.names():
        for v in reg.versions(name):
            m = reg.meta(name, v)
            rows.append(
                {"name": name, "version": v, "kind": m.kind, "approved": reg.is_approved(name, v), "metrics": m.metrics}
            )
    print(json.dumps(rows, indent=2, sort_keys=True))
    return 0


def _ttl_seconds(text: str) -> float:
    """``3600``, ``90s``, ``30m``, ``12h`` or ``7d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ttl {text!r}: use seconds or 30m / 12h / 7d") from None


def _token(args: argparse.Namespace) -> int:
    from raytrade.deployments.auth import issue_token, secret_from_env

    print(issue_token(secret_from_env(), args.role, args.ttl, args.subject, audience=args.audience))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from raytrade.cluster.serve_cli import serve_forever

    return serve_forever(args)


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="raytrade", description="Ray-based distributed AI trading engine")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole system and trade paper (embedded default)")
    r.add_argument("--config", default="configs/default.yaml", help="YAML config (default: %(default)s)")
    r.add_argument("--duration", type=float, default=60.0, help="seconds to trade (default: %(default)s)")
    r.add_argument("--serve", action="store_true", help="also deploy the HTTP gateway (configs/serve.yaml)")
    r.set_defaults(func=_run)
    tk = sub.add_parser("token", help="issue a JWT for the gateway (secret: RAYTRADE_JWT_SECRET)")
    tk.add_argument("--role", required=True, choices=["viewer", "trader", "admin"])
    tk.add_argument("--ttl", type=_ttl_seconds, default=3600.0, help="lifetime: seconds, 30m, 12h, 7d (default 1h)")
    tk.add_argument("--subject", default="cli", help="who the token is for (recorded on manual orders)")
    tk.add_argument("--audience", default="raytrade-gateway")
    tk.set_defaults(func=_token)
    sv = sub.add_parser("serve", help="deploy the gateway + ensemble + RL policy on Ray Serve and keep serving")
    sv.add_argument("--config", default="configs/serve.yaml", help="Serve config (default: %(default)s)")
    sv.add_argument("--port", type=int, help="HTTP port (overrides http_options.port)")
    sv.add_argument("--registry", help="model registry (overrides the app's args.registry)")
    sv.add_argument("--address", help="existing Ray cluster ('auto' or host:port); default: start a local one")
    sv.add_argument("--num-cpus", dest="num_cpus", type=int, default=2)
    sv.add_argument("--duration", type=float, default=None, help="seconds to serve (default: until Ctrl-C)")
    sv.set_defaults(func=_serve)
    pr = sub.add_parser("produce", help="publish the synthetic market or a Parquet/CSV file to the ticks topic")
    pr.add_argument("--config", default="configs/default.yaml")
    pr.add_argument("--bootstrap", help="Kafka host:port (default: kafka.bootstrap_servers)")
    pr.add_argument("--backend", choices=kafka.BACKENDS, help="Kafka client (default: kafka.backend)")
    pr.add_argument("--topic", help="topic (default: kafka.topic)")
    pr.add_argument("--file", help="Parquet/CSV of ticks or 1-minute bars; default: the synthetic market")
    pr.add_argument("--rate", type=float, default=None, help="ticks per second (default: as fast as possible)")
    pr.add_argument("--limit", type=int, default=None, help="stop after this many ticks")
    pr.set_defaults(func=_produce)
    t = sub.add_parser("train", help="evaluate walk-forward, fit the ensemble + anomaly gate + GARCH, register")
    t.add_argument("--config", default=None, help="YAML (default: built-in defaults, see configs/train.yaml)")
    t.add_argument("--data", help="'synthetic' or a CSV/Parquet file or folder of bars (overrides data.source)")
    t.add_argument("--horizon", type=int, help="label horizon in bars (overrides data.horizon_bars)")
    t.add_argument("--registry", help="registry directory or URI")
    t.add_argument("--output", help="where reports go (overrides output_dir)")
    t.add_argument("--approve", action="store_true", help="approve the registered versions")
    t.set_defaults(func=_train)
    tu = sub.add_parser("tune", help="Ray Tune sweep (ASHA) with the walk-forward objective; registers the best")
    tu.add_argument("config", help="YAML, e.g. configs/tune.yaml")
    tu.add_argument("--data", help="overrides data.source")
    tu.add_argument("--storage-path", dest="storage_path", help="overrides storage_path")
    tu.add_argument("--registry", help="registry directory or URI")
    tu.add_argument("--approve", action="store_true", help="approve the exported model")
    tu.set_defaults(func=_tune)
    rl = sub.add_parser("rl", help="train the PPO agent (RLlib) on the synthetic market, evaluate, register")
    rl.add_argument("--iterations", type=int, default=20)
    rl.add_argument("--batch", type=int, default=2000, help="env steps per iteration")
    rl.add_argument("--days", type=float, default=1.0, help="synthetic market days to train on")
    rl.add_argument("--seed", type=int, default=0)
    rl.add_argument("--num-cpus", dest="num_cpus", type=int, default=2)
    rl.add_argument("--registry", default="var/models")
    rl.add_argument("--approve", action="store_true")
    rl.set_defaults(func=_rl)
    from raytrade.backtest.cli import add_parser as add_backtest

    add_backtest(sub)
    mo = sub.add_parser("models", help="list registered models, or approve one")
    mo.add_argument("action", choices=["list", "approve"])
    mo.add_argument("name", nargs="?")
    mo.add_argument("version", nargs="?")
    mo.add_argument("--registry", default="var/models")
    mo.set_defaults(func=_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raytrade`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"raytrade: {exc}", file=sys.stderr)
        return 2
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        print(f"raytrade {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
