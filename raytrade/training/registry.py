"""Versioned model artifacts on disk with metadata; shards load the latest or a pinned one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raytrade import __version__


class RegistryError(RuntimeError):
    """A model is missing or incompatible with this code."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model is: enough to reproduce and to refuse a mismatched load."""

    name: str
    version: str
    kind: str
    feature_version: str
    feature_names: tuple[str, ...]
    data_range: tuple[int, int]
    params: dict[str, Any]
    metrics: dict[str, float]
    config_hash: str
    code_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)


class ModelRegistry:
    """``root/<name>/<version>/{model.bin, meta.json}``; versions are ``v0001``, ``v0002``..."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name``, oldest first."""
        d = self.root / name
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / "meta.json").is_file())

    def register(self, meta_fields: dict[str, Any], artifact: bytes) -> ModelMeta:
        """Store an artifact under the next version; returns its metadata."""
        name = meta_fields["name"]
        existing = self.versions(name)
        version = f"v{len(existing) + 1:04d}"
        meta = ModelMeta(**{**meta_fields, "version": version})
        target = self.root / name / version
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        (tmp / "model.bin").write_bytes(artifact)
        (tmp / "meta.json").write_text(json.dumps(asdict(meta), indent=2, sort_keys=True))
        os.replace(tmp, target)  # atomic: a version is either complete or absent
        return meta

    def load(self, name: str, version: str = "latest", *, feature_version: str) -> tuple[ModelMeta, bytes]:
        """Return metadata and artifact; refuse a model built for other features."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no model named {name!r} in {self.root}")
        v = versions[-1] if version == "latest" else version
        if v not in versions:
            raise RegistryError(f"model {name!r} has no version {v!r}; have {versions}")
        d = self.root / name / v
        raw = json.loads((d / "meta.json").read_text())
        raw["feature_names"] = tuple(raw["feature_names"])
        raw["data_range"] = tuple(raw["data_range"])
        meta = ModelMeta(**raw)
        if meta.feature_version != feature_version:
            raise RegistryError(
                f"model {name}/{v} was built for features {meta.feature_version!r}, "
                f"this code computes {feature_version!r}: retrain or pin a compatible version"
            )
        return meta, (d / "model.bin").read_bytes()


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
