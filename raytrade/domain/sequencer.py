"""Event-time order across shards: the RiskGate takes the shards' decision points one at a time, in
the order of their event keys, so a live run decides exactly as a backtest of the same ticks.

A *group* is what one shard sends at one event: the bars a message closed and the intents the
strategies made on them. Its key is ``(ts_event, partition, offset)``. A shard also promises, with
every group and after every batch, a *watermark*: every group it sends later has a larger key.
A group is taken when it is the smallest waiting key and every other shard is known to be past it
(its own waiting group, or its watermark, is larger), or that shard is idle (caught up and quiet
for a while; a partition without data must not stop the others).

Determinism holds when no idle partition later receives data older than what others already
decided (a backlog, or a feed that keeps every partition busy). Groups with a key at or below the
last one taken come from a shard replaying after a restart: the ledger answers them at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

Key = tuple[int, int, int]  # (event time ns, partition, offset)
BEFORE_ALL: Key = (-1, -1, -1)


class EventOrder:
    """Which waiting group may go next (pure bookkeeping; the gate actor does the waiting)."""

    def __init__(self, shards: Iterable[int] = ()) -> None:
        self.watermark: dict[int, Key] = dict.fromkeys(shards, BEFORE_ALL)
        self.waiting: Counter[tuple[Key, int]] = Counter()
        self.idle: set[int] = set()
        self.last: Key | None = None
        self.busy = False

    def register(self, shards: Iterable[int]) -> None:
        """The shards whose progress bounds every decision (new ones start before everything)."""
        for s in shards:
            self.watermark.setdefault(s, BEFORE_ALL)

    def replayed(self, key: Key) -> bool:
        """A group at or before the last one taken: already decided (a shard re-reading after a restart)."""
        return self.last is not None and key <= self.last

    def offer(self, shard: int, key: Key) -> None:
        """``shard`` waits with its group ``key`` (the shard is busy again: not idle)."""
        self.idle.discard(shard)
        self.waiting[(key, shard)] += 1

    def _frontier(self, shard: int) -> Key:
        mine = [k for (k, s) in self.waiting if s == shard]
        return min(mine) if mine else self.watermark.get(shard, BEFORE_ALL)

    def ready(self, shard: int, key: Key) -> bool:
        """May ``shard``'s group ``key`` be taken now?"""
        if self.busy or min(self.waiting) != (key, shard):
            return False
        return all(s == shard or s in self.idle or key < self._frontier(s) for s in self.watermark)

    def take(self) -> None:
        """A ready group is being decided (one at a time)."""
        self.busy = True

    def done(self, shard: int, key: Key, watermark: Key | None) -> None:
        """The group is decided; ``watermark`` (default: its key) bounds what ``shard`` sends next."""
        self.busy = False
        self.waiting[(key, shard)] -= 1
        if self.waiting[(key, shard)] <= 0:
            del self.waiting[(key, shard)]
        self.last = key if self.last is None else max(self.last, key)
        self.advance(shard, watermark or key)

    def abandon(self, shard: int, key: Key) -> None:
        """A waiting group's call failed before it was decided."""
        self.waiting[(key, shard)] -= 1
        if self.waiting[(key, shard)] <= 0:
            del self.waiting[(key, shard)]

    def advance(self, shard: int, watermark: Key) -> None:
        """``shard`` will send nothing at or below ``watermark`` (it never moves back)."""
        self.idle.discard(shard)
        self.watermark[shard] = max(self.watermark.get(shard, BEFORE_ALL), watermark)

    def set_idle(self, shard: int, idle: bool) -> None:
        """An idle shard (caught up, no data for a while) does not hold the others back."""
        if idle:
            self.idle.add(shard)
        else:
            self.idle.discard(shard)
