"""``raytrade serve``: Ray (local or existing), the default model if the registry is empty, the Serve app."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import ray

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
    started = not args.address
    if started:
        tmp = tempfile.mkdtemp(prefix="raytrade-serve-")
        os.environ.setdefault("RAY_TMPDIR", tmp)
        ray.init(
            num_cpus=args.num_cpus,
            object_store_memory=200 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=tmp,
        )
    else:
        ray.init(address=args.address, log_to_driver=False)
    try:
        url = deploy(cfg)
        print(f"raytrade gateway: {url} (OpenAPI docs at {url}/docs); Ctrl-C stops", file=sys.stderr, flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        ray.shutdown()  # a Ray we started takes Serve with it; on an existing cluster the app keeps serving
    return 0
