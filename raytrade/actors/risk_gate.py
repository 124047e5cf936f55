"""RiskGate actor: the only door to Execution."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray

from raytrade.domain.orders import ExecutionReply, OrderIntent, OrderReport
from raytrade.domain.risk import RiskLimits, RiskRules, TradingState


def _write_atomically(path: Path, text: str) -> None:
    """Write, fsync, rename: the file holds the old or the new content, never a torn one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RiskGate:
    """Check every intent, forward the decisions to Execution in one call, return reports.

    Fault tolerance: Ray restarts a dead gate and retries the calls that were in flight.
    The trading state (the kill switch) is persisted to ``state_path`` before a halt or
    resume returns, so HALTED survives a restart; positions are re-read from Execution.
    At most ``max_inflight`` batches wait on Execution at once (a bounded queue): callers
    beyond that wait here, and shards wait on their call, so intake slows down.
    """

    def __init__(self, limits: RiskLimits, execution: Any, state_path: str, max_inflight: int = 4) -> None:
        self.rules = RiskRules(limits)
        self.execution = execution
        self.state_path = Path(state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            if saved["state"] == TradingState.HALTED.value:
                self.rules.halt(saved["reason"])
        self._slots = asyncio.Semaphore(max_inflight)
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self.approved = 0
        self.denied = 0
        self.replayed = 0
        self.inflight = 0
        self.calls = 0
        self.execute_wait_s = 0.0  # time spent waiting on Execution (the profile behind the benchmark)

    async def _load_positions(self) -> None:
        async with self._load_lock:
            if self._loaded:
                return
            positions, marks, seq = await self.execution.positions.remote()
            self.rules.confirm(positions, seq)
            self.rules.marks.update(marks)
            self._loaded = True

    async def submit(self, intents: list[OrderIntent], replay: bool = False) -> list[OrderReport]:
        """Decide, execute, settle the gate's view with Execution's positions.

        ``replay`` marks intents that may have been decided before (a shard re-reading after
        a restart): their recorded reports are returned as they are, without a second check.
        """
        if not self._loaded:
            await self._load_positions()
        done: dict[str, OrderReport] = {}
        if replay:
            done = await self.execution.reports.remote([i.order_id for i in intents])
            self.replayed += len(done)
        decisions = [self.rules.check(i) for i in intents if i.order_id not in done]
        approved = [d.intent for d in decisions if d.approved]
        self.approved += len(approved)
        self.denied += len(decisions) - len(approved)
        if decisions:
            async with self._slots:
                self.inflight += 1
                self.calls += 1
                t0 = time.perf_counter()
                try:
                    reply: ExecutionReply = await self.execution.execute.remote(decisions)
                except BaseException:
                    self.rules.release(approved)
                    raise
                finally:
                    self.inflight -= 1
                    self.execute_wait_s += time.perf_counter() - t0
            self.rules.settle(approved, reply.positions, reply.seq, [r.fill for r in reply.reports if r.fill])
            done.update((r.order_id, r) for r in reply.reports)
        return [done[i.order_id] for i in intents]

    def _persist(self) -> None:
        state = {"state": self.rules.state.value, "reason": self.rules.halt_reason}
        _write_atomically(self.state_path, json.dumps(state))

    def halt(self, reason: str) -> None:
        """Engage the kill switch (durably): every later intent is denied."""
        self.rules.halt(reason)
        self._persist()

    def resume(self) -> None:
        """Release the kill switch (durably)."""
        self.rules.resume()
        self._persist()

    def pid(self) -> int:
        """The actor's process id (for fault-injection tests)."""
        return os.getpid()

    async def state(self) -> dict[str, Any]:
        """Trading state, counts and the gate's position view."""
        if not self._loaded:
            await self._load_positions()
        return {
            "state": self.rules.state.value,
            "halt_reason": self.rules.halt_reason,
            "approved": self.approved,
            "denied": self.denied,
            "replayed": self.replayed,
            "inflight": self.inflight,
            "execute_calls": self.calls,
            "execute_wait_s": round(self.execute_wait_s, 4),
            "positions": {s: str(q) for s, q in self.rules.positions.items()},
            "limits": {k: str(v) for k, v in asdict(self.rules.limits).items()},
            "exposures": {
                s: str(abs(q) * self.rules.marks[s]) for s, q in self.rules.positions.items() if s in self.rules.marks
            },
            "gross_exposure": str(self.rules.gross_exposure()),
        }
