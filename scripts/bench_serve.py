"""Serving benchmark: /v1/predict over HTTP through Ray Serve, against the same model in process.

Serve setups measured in one run, each in a fresh Ray instance (a subprocess):

* ``proxy``: Serve's default HTTP proxy actor in front of the gateway replica;
* ``direct``: ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (direct ingress: the gateway replica serves
  HTTP itself, gRPC between replicas), with ``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=1`` so
  handles still work from code outside an event loop;
* ``*_handle``: the same, with the gateway scoring through the Ensemble deployment's handle
  (``scoring: handle``) instead of its in-replica model copy (``scoring: local``, the default).

For each: single-row latency (sequential, keep-alive), throughput and latency at concurrency
1/8/32, the ensemble deployment batched vs unbatched (32 concurrent handle calls), and the
shards' path (500 windows per call) through the handle. The floor is the same model's
in-process ``Scorer.score`` on one row, measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = "bench-" + "x" * 40


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q / 100 * len(s)))], 3)


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "median_ms": round(statistics.median(ms), 3)}


def registry(root: Path) -> Any:
    from raytrade.training.bootstrap import train_on_synthetic
    from raytrade.training.registry import ModelRegistry

    reg = ModelRegistry(root)
    train_on_synthetic(reg, seed=7, days=3.0, horizon=5, rounds=150)  # the embedded default's model
    return reg


def rows() -> np.ndarray:
    from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
    from raytrade.training.datasets import build_dataset

    return build_dataset(ticks_to_bars(SyntheticMarket(seed=5).ticks_frame(4 * 3600)), 5).x


def floor(reg_uri: str, x: np.ndarray, n: int) -> dict[str, Any]:
    """The same model and gate in this process: one row per call."""
    from raytrade.deployments.scoring import ModelSpec, Scorer

    s = Scorer(ModelSpec(reg_uri, "xgb_direction", "approved", "anomaly_iforest"))
    ms = []
    for i in range(n):
        w = x[i % len(x)][None, None, :]
        t = time.perf_counter()
        s.score(w)
        ms.append((time.perf_counter() - t) * 1000)
    big = np.ascontiguousarray(x[:500][:, None, :])
    shard_ms = []
    for _ in range(30):
        t = time.perf_counter()
        s.score(big)
        shard_ms.append((time.perf_counter() - t) * 1000)
    return {"single_row": summary(ms[n // 10 :]), "shard_batch_500": summary(shard_ms[3:])}


def http_load(port: int, token: str, x: np.ndarray, concurrency: int, seconds: float) -> dict[str, Any]:
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker(k: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = k
        while time.monotonic() < stop:
            body = json.dumps({"features": [x[i % len(x)].tolist()]})
            t = time.perf_counter()
            c.request("POST", "/v1/predict", body=body, headers=headers)
            r = c.getresponse()
            r.read()
            lat[k].append((time.perf_counter() - t) * 1000)
            errors[k] += r.status != 200
            i += concurrency

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    flat = [v for part in lat for v in part]
    return {"concurrency": concurrency, "requests": len(flat), "errors": sum(errors),
            "throughput_rps": round(len(flat) / elapsed, 1), **summary(flat)}  # fmt: skip


def handle_batching(x: np.ndarray, calls: int) -> dict[str, Any]:
    from ray import serve

    h = serve.get_deployment_handle("Ensemble", "raytrade")
    out: dict[str, Any] = {}
    for method in ("predict", "predict_unbatched"):
        fn = getattr(h, method)
        for _ in range(2):
            [fn.remote(x[i][None, :]).result() for i in range(32)]
        t0 = time.perf_counter()
        done = 0
        while done < calls:
            responses = [fn.remote(x[(done + i) % len(x)][None, :]) for i in range(32)]
            for r in responses:
                r.result()
            done += 32
        out[method] = {"calls": done, "throughput_per_s": round(done / (time.perf_counter() - t0), 1)}
    big = np.ascontiguousarray(x[:500][:, None, :])
    ms = []
    for _ in range(30):
        t = time.perf_counter()
        h.predict_windows.remote(big).result()
        ms.append((time.perf_counter() - t) * 1000)
    out["shard_batch_500_via_handle"] = summary(ms[3:])
    return out


def run_mode(mode: str, reg_uri: str, out: Path, seq: int, seconds: float) -> None:
    """One Serve setup in this (fresh) process."""
    import ray

    from raytrade.adapters.embedded_broker import free_port
    from raytrade.cluster.serving import deploy, load_serve_config
    from raytrade.deployments.auth import issue_token
    from raytrade.deployments.rate_limit import ROUTE_CLASSES

    port = free_port()
    query = port
    if mode.startswith("direct"):
        query = free_port()
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(query)
        os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(query + 50)
    tmp = tempfile.mkdtemp(prefix="rtb-")
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             _temp_dir=tmp)  # fmt: skip
    try:
        scoring = "handle" if mode.endswith("handle") else "local"
        unlimited = {c: {"rate_per_s": 1e6, "burst": 1_000_000} for c in ROUTE_CLASSES}
        cfg = load_serve_config(REPO / "configs" / "serve.yaml", port=port, registry=reg_uri, limits=unlimited,
                                scoring=scoring)  # fmt: skip
        t0 = time.perf_counter()
        deploy(cfg)
        deploy_s = time.perf_counter() - t0
        token = issue_token(SECRET, "viewer", 3600)
        x = rows()
        result: dict[str, Any] = {"mode": mode, "scoring": scoring, "deploy_s": round(deploy_s, 1)}
        c = http.client.HTTPConnection("127.0.0.1", query, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for name, path, body in (("health", "/health", None), ("predict", "/v1/predict", True)):
            ms = []
            for i in range(seq + 50):
                payload = json.dumps({"features": [x[i % len(x)].tolist()]}) if body else None
                t = time.perf_counter()
                c.request("POST" if body else "GET", path, body=payload, headers=headers)
                r = c.getresponse()
                r.read()
                assert r.status == 200, (path, r.status)
                ms.append((time.perf_counter() - t) * 1000)
            result[f"sequential_{name}"] = summary(ms[50:])
        result["load"] = [http_load(query, token, x, n, seconds) for n in (1, 8, 32)]
        result["handle"] = handle_batching(x, 640)
        out.write_text(json.dumps(result))
    finally:
        from ray import serve

        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="proxy,proxy_handle,direct,direct_handle")
    ap.add_argument("--sequential", type=int, default=500, help="single-row requests measured one after another")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each concurrency level")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "serve.json"))
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--registry", help=argparse.SUPPRESS)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["RAYTRADE_JWT_SECRET"] = SECRET
    if args.mode:
        run_mode(args.mode, args.registry, Path(args.part), args.sequential, args.seconds)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    reg = registry(work / "models")
    report: dict[str, Any] = {
        "benchmark": "serve",
        "machine": {"cpus": os.cpu_count()},
        "model": "xgb_direction (150 rounds) + anomaly_iforest, the embedded default's",
        "floor_in_process": floor(reg.uri, rows(), 3000),
    }
    for mode in args.modes.split(","):
        part = work / f"{mode}.json"
        env = dict(os.environ)
        if mode.startswith("direct"):
            env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
            # Keep handles usable outside an event loop (the driver here, sync actors such as the shards).
            env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] = "1"
        cmd = [sys.executable, __file__, "--mode", mode, "--registry", reg.uri, "--part", str(part),
               "--sequential", str(args.sequential), "--seconds", str(args.seconds)]  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
        report[mode] = json.loads(part.read_text())
    f = report["floor_in_process"]["single_row"]["p50_ms"]
    report["serve_overhead_p50_ms"] = {
        m: round(report[m]["sequential_predict"]["p50_ms"] - f, 3) for m in args.modes.split(",")
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
