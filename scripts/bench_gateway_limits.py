"""Does the gateway protect the engine on this machine? Floods measured against the same app, in one run.

    .venv/bin/python scripts/bench_gateway_limits.py        # ~2 min; writes runs/bench/gateway_limits.json

1. **One subject floods** ``/v1/predict`` at concurrency 32 for ``--seconds`` while another subject sends one
   request at a time: with the default limits, then with limits set out of reach (the baseline, no
   protection). Reported: the flooder's answered and refused (429) requests per second, and the other
   subject's latency p50/p99 and errors (it sends 10 requests a second).
2. **Anonymous big bodies**, default limits: one 20 MB JSON object of 1.5 M keys with no token (the time to
   the answer, its size, the gateway replica's RSS before and after), and a viewer's latency while two
   clients keep sending 5 MB anonymous bodies, against the same viewer on an idle gateway.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = "bench-" + "x" * 40
VIEWER_RATE = 10.0  # requests a second from the well-behaved subject (its limit is 20)
FEATURES = json.dumps({"features": [[0.001, 0.0, 0.0, 0.001, 50.0, 0.0, 0.0, 0.0, 0.5, 0.001, 1.0]]})


def summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms) or [0.0]
    p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
    return {"n": len(ms), "p50_ms": round(s[len(s) // 2], 2), "p99_ms": round(p99, 2),
            "median_ms": round(statistics.median(s), 2)}  # fmt: skip


def predict_loop(port: int, token: str, stop: float, lat: list[float], codes: list[int], per_s: float = 0) -> None:
    """Predict requests until ``stop`` (monotonic), at most ``per_s`` a second (0: back to back)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.monotonic() < stop:
        if per_s and lat:
            time.sleep(max(0.0, 1 / per_s - lat[-1] / 1000))
        t = time.perf_counter()
        c.request("POST", "/v1/predict", body=FEATURES, headers=headers)
        r = c.getresponse()
        r.read()
        lat.append((time.perf_counter() - t) * 1000)
        codes.append(r.status)


def flood(port: int, flooder: str, other: str, seconds: float) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    flood_codes: list[int] = []
    flood_lat: list[float] = []
    threads = [threading.Thread(target=predict_loop, args=(port, flooder, stop, flood_lat, flood_codes))
               for _ in range(32)]  # fmt: skip
    other_lat: list[float] = []
    other_codes: list[int] = []
    for t in threads:
        t.start()
    predict_loop(port, other, stop, other_lat, other_codes, per_s=VIEWER_RATE)
    for t in threads:
        t.join()
    return {
        "flooder_answered_per_s": round(sum(c == 200 for c in flood_codes) / seconds, 1),
        "flooder_refused_429_per_s": round(sum(c == 429 for c in flood_codes) / seconds, 1),
        "other_subject": {**summary(other_lat), "errors": sum(c != 200 for c in other_codes)},
    }


def anonymous_body(port: int, body: bytes) -> tuple[int, float, int]:
    """POST ``body`` without a token; stop sending once answered. (status, seconds, response bytes)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())  # fmt: skip
        s.setblocking(False)
        sent, answer = 0, b""
        while True:
            try:
                answer += s.recv(1 << 20)
                if b"\r\n\r\n" in answer:
                    break
            except BlockingIOError:
                pass
            if sent < len(body):
                try:
                    sent += s.send(body[sent : sent + 65536])
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    time.sleep(0.001)
            else:
                time.sleep(0.001)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, round(time.perf_counter() - t0, 3), len(answer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "gateway_limits.json"))
    args = ap.parse_args()
    os.environ["RAYTRADE_JWT_SECRET"] = SECRET
    import ray
    from ray import serve

    from raytrade.adapters.embedded_broker import free_port
    from raytrade.cluster.local_ray import local_ray
    from raytrade.cluster.serving import deploy, load_serve_config
    from raytrade.deployments.auth import issue_token
    from raytrade.deployments.rate_limit import ROUTE_CLASSES
    from raytrade.training.bootstrap import train_on_synthetic
    from raytrade.training.registry import ModelRegistry

    work = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    reg = ModelRegistry(work / "models")
    train_on_synthetic(reg, seed=7, days=3.0, horizon=5, rounds=150)
    flooder, other = issue_token(SECRET, "viewer", 3600, "flooder"), issue_token(SECRET, "viewer", 3600, "other")
    report: dict[str, Any] = {"benchmark": "gateway_limits", "machine": {"cpus": os.cpu_count()}}
    with local_ray(2, 200, prefix="bench-ray-"):
        port = free_port()
        unlimited = {c: {"rate_per_s": 1e6, "burst": 1_000_000} for c in ROUTE_CLASSES}
        for label, limits in (("no_limits_baseline", unlimited), ("default_limits", None)):
            extra = {"limits": limits} if limits else {}
            deploy(load_serve_config(REPO / "configs" / "serve.yaml", port=port, registry=reg.uri, **extra))
            time.sleep(2)
            report[label] = {"flood_c32": flood(port, flooder, other, args.seconds)}
            time.sleep(3)  # buckets refill
        gateway = next(p for p in psutil.process_iter(["name"]) if "ServeReplica:raytrade:Gateway" in p.info["name"])
        idle: list[float] = []
        predict_loop(port, other, time.monotonic() + 5, idle, [], per_s=VIEWER_RATE)
        big = ("{" + ",".join(f'"k{i}":{i}' for i in range(1_500_000)) + "}").encode()
        rss0 = gateway.memory_info().rss
        status, seconds, size = anonymous_body(port, big)
        rss1 = gateway.memory_info().rss
        stop = threading.Event()

        def attacker() -> None:
            while not stop.is_set():
                anonymous_body(port, big[: 5 * 2**20])

        attackers = [threading.Thread(target=attacker) for _ in range(2)]
        for t in attackers:
            t.start()
        time.sleep(0.5)
        busy: list[float] = []
        codes: list[int] = []
        predict_loop(port, other, time.monotonic() + 5, busy, codes, per_s=VIEWER_RATE)
        stop.set()
        for t in attackers:
            t.join()
        report["anonymous_20mb_body"] = {"status": status, "seconds": seconds, "response_bytes": size,
                                         "gateway_rss_mb_before": round(rss0 / 2**20, 1),
                                         "gateway_rss_mb_after": round(rss1 / 2**20, 1)}  # fmt: skip
        report["viewer_predict_idle"] = summary(idle)
        report["viewer_predict_during_5mb_anonymous_bodies"] = {**summary(busy), "errors": sum(c != 200 for c in codes)}
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
