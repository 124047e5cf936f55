"""``raytrade serve``: Ray (local or existing), the default model if the registry is empty, the Serve app."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import ray

from raytrade.cluster.local_ray import local_ray
from raytrade.cluster.serving import APP_NAME, deploy, load_serve_config
from raytrade.deployments.auth import secret_from_env
from raytrade.training.bootstrap import MODEL_NAME, ensure_model
from raytrade.training.registry import ModelRegistry


def serve_forever(args: argparse.Namespace) -> int:
    """Deploy and serve until Ctrl-C or ``--duration``; shut down what was started."""
    secret_from_env()  # the replicas inherit it: fail before starting anything
    cfg = load_serve_config(args.config, port=args.port, registry=args.registry)
    app_args = next(a for a in cfg["applications"] if a["name"] == APP_NAME)["args"]
    if app_args.get("model", MODEL_NAME) == MODEL_NAME:
        ensure_model(ModelRegistry(app_args["registry"]), seed=7, days=3.0, horizon=5, rounds=150)
    stack = contextlib.ExitStack()
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
        stack.callback(ray.shutdown)
    else:
        stack.enter_context(local_ray(args.num_cpus, 200, prefix="raytrade-serve-"))
    try:
        url = deploy(cfg)
        print(f"raytrade gateway: {url} (OpenAPI at {url}/openapi.json); Ctrl-C stops", file=sys.stderr, flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.close()  # a Ray we started takes Serve with it; on an existing cluster the app keeps serving
    return 0
