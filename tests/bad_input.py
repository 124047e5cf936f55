"""The bad-input corpus (tests/data/bad_ticks.jsonl): malformed and adversarial messages."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "bad_ticks.jsonl"


@dataclass(frozen=True)
class CorpusMessage:
    """One message: ``reason`` is the expected rejection, ``None`` for a valid control tick."""

    name: str
    key: bytes | None
    value: bytes
    reason: str | None


def load_corpus(ts: int, old_ts: int) -> list[CorpusMessage]:
    """The corpus with ``{ts}`` (a valid next timestamp) and ``{old_ts}`` (an older one) filled in."""
    out = []
    for line in CORPUS.read_text().splitlines():
        row = json.loads(line)
        if "value_b64" in row:
            value = base64.b64decode(row["value_b64"])
        else:
            value = row["value"].replace("{ts}", str(ts)).replace("{old_ts}", str(old_ts)).encode()
        key = row["key"].encode() if row["key"] is not None else None
        out.append(CorpusMessage(row["name"], key, value, row["reason"]))
    return out
