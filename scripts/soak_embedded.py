"""Soak the embedded default: `raytrade run` for an hour at its default feed rate, rolled log (the default)
against the same run on one topic (the baseline, shorter: it stalls), measured in the same script run.

    .venv/bin/python scripts/soak_embedded.py                     # 1 h + 10 min baseline; ~72 min
    .venv/bin/python scripts/soak_embedded.py --soak-s 300 --baseline-s 300

Every 10 s it samples the run's process tree: lag (ticks produced - consumed, from the progress lines),
RSS of the broker, of Ray's processes and of the driver, and the broker's CPU. Writes
runs/bench/soak.json: the samples and, per run, lag p50/p99/max over the whole run and its last 10
minutes, the consume rate, broker RSS and CPU at the start and the end, and the RSS slope (MB/h).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"produced=(\d+) consumed=(\d+)")
SAMPLE_S = 10.0


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))] if s else 0.0


def _kind(p: psutil.Process) -> str:
    name = p.name()
    if name == "tansu":
        return "broker"
    if name in ("raylet", "gcs_server") or name.startswith("ray::"):
        return "ray"
    return "driver" if name.startswith("raytrade") else "other"


def soak(label: str, seconds: float, out_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `raytrade run` of ``seconds``; samples and their summary."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "raytrade.cluster.cli", "run", "--duration", str(seconds)],
        cwd=REPO, env={**os.environ, **env, "RAYTRADE__OUTPUT_DIR": str(out_dir)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last: dict[str, int] = {"produced": 0, "consumed": 0}

    def read_progress() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = PROGRESS.search(line)
            if m:
                last["produced"], last["consumed"] = int(m[1]), int(m[2])

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    t0 = time.monotonic()
    samples: list[dict[str, Any]] = []
    cpu_before: dict[int, float] = {}
    while proc.poll() is None:
        time.sleep(SAMPLE_S)
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss: dict[str, float] = {}
        by_process: dict[str, float] = {}
        broker_cpu = 0.0
        for p in tree:
            try:
                kind = _kind(p)
                mb = p.memory_info().rss / 2**20
                rss[kind] = rss.get(kind, 0.0) + mb
                by_process[p.name()] = round(by_process.get(p.name(), 0.0) + mb, 1)
                if kind == "broker":
                    t = p.cpu_times()
                    used = t.user + t.system
                    broker_cpu = 100 * (used - cpu_before.get(p.pid, used)) / SAMPLE_S
                    cpu_before[p.pid] = used
            except psutil.NoSuchProcess:
                continue
        samples.append({
            "t": round(time.monotonic() - t0, 1), "produced": last["produced"], "consumed": last["consumed"],
            "lag": last["produced"] - last["consumed"], "rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "rss_mb_by_process": by_process,
            "broker_cpu_pct": round(broker_cpu, 1),
        })  # fmt: skip
    proc.wait()
    summary = json.loads((out_dir / "summary.json").read_text()) if (out_dir / "summary.json").exists() else {}
    return {"label": label, "seconds": seconds, "returncode": proc.returncode, "stats": summarize(samples),
            "run_summary": {k: summary.get(k) for k in ("ticks_produced", "ticks_consumed", "consumer_lag",
                                                         "shard_errors", "ticks_log", "reconciliation")},
            "samples": samples}  # fmt: skip


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [s for s in samples if "broker" in s["rss_mb"]]  # not the ones taken while the run shut down
    if not samples:
        return {}
    tail = [s for s in samples if s["t"] >= samples[-1]["t"] - 600]
    head = [s for s in samples if s["t"] <= 600]
    lag = [float(s["lag"]) for s in samples]
    total = [sum(s["rss_mb"].values()) for s in samples]
    hours = max(samples[-1]["t"] - samples[0]["t"], 1.0) / 3600

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 1) if xs else 0.0

    return {
        "lag": {"p50": percentile(lag, 50), "p99": percentile(lag, 99), "max": max(lag),
                "last_10min_max": max(float(s["lag"]) for s in tail), "final": lag[-1]},
        "consume_rate_per_s": round((samples[-1]["consumed"] - samples[0]["consumed"])
                                    / max(samples[-1]["t"] - samples[0]["t"], 1.0), 1),
        "broker_rss_mb": {"first": samples[0]["rss_mb"].get("broker"), "last": samples[-1]["rss_mb"].get("broker"),
                          "max": max(s["rss_mb"].get("broker", 0.0) for s in samples)},
        "broker_cpu_pct": {"first_10min_mean": mean([s["broker_cpu_pct"] for s in head]),
                           "last_10min_mean": mean([s["broker_cpu_pct"] for s in tail]),
                           "max": max(s["broker_cpu_pct"] for s in samples)},
        "total_rss_mb": {"first": round(total[0], 1), "last": round(total[-1], 1), "max": round(max(total), 1),
                         "slope_mb_per_h": round((total[-1] - total[0]) / hours, 1)},
        "rss_growth_mb_by_process": _growth(samples[0], samples[-1]),
    }  # fmt: skip


def _growth(first: dict[str, Any], last: dict[str, Any]) -> dict[str, float]:
    """RSS change of each process (by name) from the first sample to the last, largest first."""
    a, b = first.get("rss_mb_by_process", {}), last.get("rss_mb_by_process", {})
    grown = {name: round(b.get(name, 0.0) - a.get(name, 0.0), 1) for name in set(a) | set(b)}
    return dict(sorted(grown.items(), key=lambda kv: -abs(kv[1])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--soak-s", type=float, default=3600.0, help="the default (rolled log) run")
    ap.add_argument("--baseline-s", type=float, default=600.0, help="one topic, no rolling (0 = skip)")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "soak.json"))
    args = ap.parse_args()
    work = REPO / "runs" / "soak"
    long_feed = {"RAYTRADE__FEED__SIMULATED_SECONDS": str(30 * 86_400)}  # longer than any soak at 3,000 ticks/s
    runs = [soak("rolled log (default)", args.soak_s, work / "rolled", long_feed)]
    if args.baseline_s > 0:
        runs.append(soak("one topic (baseline)", args.baseline_s, work / "baseline",
                         {**long_feed, "RAYTRADE__KAFKA__ROLL_RECORDS": "null"}))  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": runs}, indent=1))
    print(json.dumps([{"label": r["label"], **r["stats"], "run": r["run_summary"]} for r in runs], indent=1))


if __name__ == "__main__":
    main()
