"""Compare a peer's result JSON with the reference's: same trades, same open entries (stdlib only)."""

from __future__ import annotations

import json
import sys
from typing import Any

REL_TOL = 1e-9  # peers may carry prices as float/fixed-point: allow 1e-9 relative
MAX_LINES = 20


def _price_equal(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _field_equal(field: str, ref: dict[str, Any], other: dict[str, Any]) -> bool:
    if field not in other:
        return False
    if field.endswith("_price"):
        return _price_equal(float(ref[field]), float(other[field]))
    return bool(ref[field] == other[field])


def _keyed(result: dict[str, Any], key: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(row["symbol"], int(row["entry_ts"])): row for row in result.get(key, [])}


def _diff_rows(key: str, reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Rows matched on (symbol, entry_ts): missing, extra, and differing fields."""
    ref, oth = _keyed(reference, key), _keyed(other, key)
    out: list[str] = []
    if len(ref) != len(oth):
        out.append(f"{key}: {len(oth)} rows, reference has {len(ref)}")
    for k in sorted(ref.keys() | oth.keys()):
        if k not in oth:
            out.append(f"{key}: missing {ref[k]}")
        elif k not in ref:
            out.append(f"{key}: extra {oth[k]}")
        else:
            r, o = ref[k], oth[k]
            bad = [f"{field} {o.get(field)!r} != {r[field]!r}" for field in r if not _field_equal(field, r, o)]
            if bad:
                out.append(f"{key} {k[0]} entry {k[1]}: " + "; ".join(bad))
    return out


def compare(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Differences between two results (trades and open entries), empty when they agree.

    Rows are matched on (symbol, entry_ts); exit timestamps must be equal, prices equal within 1e-9
    relative. At most ``MAX_LINES`` lines, plus one saying how many more.
    """
    out: list[str] = []
    if reference.get("bars") != other.get("bars"):
        out.append(f"bars: {other.get('bars')} != {reference.get('bars')}")
    out += _diff_rows("trades", reference, other)
    out += _diff_rows("open", reference, other)
    if len(out) > MAX_LINES:
        out = [*out[:MAX_LINES], f"... and {len(out) - MAX_LINES} more differences"]
    return out


def main(argv: list[str]) -> int:
    """``python compare.py reference.json other.json [...]``: print differences, exit 1 if any."""
    if len(argv) < 2:
        print("usage: compare.py REFERENCE.json OTHER.json [OTHER.json ...]", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        reference = json.load(f)
    status = 0
    for path in argv[1:]:
        with open(path) as f:
            other = json.load(f)
        diffs = compare(reference, other)
        name = f"{other.get('engine')} ({path})"
        print(f"{name}: DIFFERS" if diffs else f"{name}: OK, {len(other['trades'])} trades")
        for line in diffs:
            print("  " + line)
        status |= bool(diffs)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
