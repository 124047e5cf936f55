"""Versioned model artifacts with metadata, behind a pluggable storage URI.

Layout under the registry root: ``<name>/<version>/{model.bin, meta.json}`` and, once approved,
``<name>/<version>/approved.json``. Versions are ``v0001``, ``v0002``... A version is written
atomically (complete or absent); its metadata never changes afterwards, approval is a separate
marker. Consumers ask for ``"latest"``, ``"approved"`` (the newest approved) or a pinned ``"vNNNN"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from raytrade import __version__

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
VERSION_RE = re.compile(r"^v\d{4,}$")
SELECTORS = ("latest", "approved")


class RegistryError(RuntimeError):
    """A model is missing, invalid, or incompatible with this code."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model is: enough to reproduce it and to refuse a mismatched load."""

    name: str
    version: str
    kind: str
    feature_version: str
    feature_names: tuple[str, ...]
    data_range: tuple[int, int]  # first and last bar time trained on, epoch ns
    params: dict[str, Any]
    metrics: dict[str, float]
    config_hash: str
    sha256: str = ""
    created_at: float = 0.0
    code_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)


def validate_meta(m: ModelMeta) -> None:
    """Raise :class:`RegistryError` naming every problem in ``m``."""
    errors = []
    if not NAME_RE.match(m.name):
        errors.append(f"name {m.name!r} must match {NAME_RE.pattern}")
    if not m.kind:
        errors.append("kind is empty")
    if not m.feature_version:
        errors.append("feature_version is empty")
    if not m.feature_names or not all(isinstance(f, str) and f for f in m.feature_names):
        errors.append("feature_names must be a non-empty list of names")
    elif len(set(m.feature_names)) != len(m.feature_names):
        errors.append("feature_names has duplicates")
    if len(m.data_range) != 2 or not all(isinstance(t, int) for t in m.data_range) or m.data_range[0] > m.data_range[1]:
        errors.append(f"data_range must be (first, last) integer times with first <= last, found {m.data_range}")
    for k, v in m.metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            errors.append(f"metric {k!r} must be a finite number, found {v!r}")
    if not re.fullmatch(r"[0-9a-f]{16}", m.config_hash):
        errors.append(f"config_hash must be 16 hex digits, found {m.config_hash!r}")
    try:
        json.dumps(m.params, allow_nan=False)
        json.dumps(m.extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        errors.append(f"params and extra must be JSON without NaN: {exc}")
    if errors:
        raise RegistryError(f"invalid model metadata for {m.name!r}: " + "; ".join(errors))


class ArtifactStore(Protocol):
    """Where versions live. ``file://`` ships; an S3-style store implements the same four calls."""

    def list_dirs(self, prefix: str) -> list[str]: ...

    def read(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def write_dir(self, prefix: str, files: dict[str, bytes]) -> None:
        """Create ``prefix`` holding ``files`` atomically; fail if it exists."""
        ...

    def write(self, key: str, data: bytes) -> None: ...


class LocalStore:
    """A directory on a local or mounted file system."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"file://{self.root.resolve()}"

    def list_dirs(self, prefix: str) -> list[str]:
        d = self.root / prefix
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    def write_dir(self, prefix: str, files: dict[str, bytes]) -> None:
        target = self.root / prefix
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        os.rename(tmp, target)  # atomic; fails if the version exists (a concurrent writer won)

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


STORES: dict[str, Callable[[str], ArtifactStore]] = {"file": LocalStore}


def store_for(uri: str) -> ArtifactStore:
    """``file:///abs/path``, a plain path, or any scheme added to :data:`STORES`."""
    parsed = urlparse(uri)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        return LocalStore(uri)
    factory = STORES.get(parsed.scheme)
    if factory is None:
        raise RegistryError(f"no artifact store for {parsed.scheme!r} URIs ({uri}); available: {sorted(STORES)}")
    return factory(parsed.netloc + parsed.path if parsed.scheme != "file" else parsed.path)


class ModelRegistry:
    """Register, approve, list and load model versions."""

    def __init__(self, uri: str | Path) -> None:
        self.uri = str(uri)
        self.store = store_for(self.uri)

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name``, oldest first."""
        return [
            v for v in self.store.list_dirs(name) if VERSION_RE.match(v) and self.store.exists(f"{name}/{v}/meta.json")
        ]

    def names(self) -> list[str]:
        return [n for n in self.store.list_dirs("") if NAME_RE.match(n) and self.versions(n)]

    def register(self, meta_fields: dict[str, Any], artifact: bytes, *, approve: bool = False) -> ModelMeta:
        """Validate and store an artifact under the next version; returns its metadata."""
        fields = {**meta_fields, "sha256": hashlib.sha256(artifact).hexdigest(), "created_at": time.time()}
        fields["feature_names"] = tuple(fields.get("feature_names", ()))
        fields["data_range"] = tuple(int(t) for t in fields.get("data_range", ()))
        name = fields.get("name", "")
        for attempt in range(5):
            existing = self.versions(name) if NAME_RE.match(str(name)) else []
            meta = ModelMeta(**{**fields, "version": f"v{len(existing) + 1 + attempt:04d}"})
            validate_meta(meta)
            files = {"model.bin": artifact, "meta.json": json.dumps(asdict(meta), indent=2, sort_keys=True).encode()}
            try:
                self.store.write_dir(f"{name}/{meta.version}", files)
            except OSError:
                continue  # another writer took this version number
            if approve:
                self.approve(name, meta.version)
            return meta
        raise RegistryError(f"could not allocate a version for {name!r} in {self.uri}")

    def approve(self, name: str, version: str, by: str = "raytrade") -> None:
        """Mark a version approved: ``"approved"`` loads now resolve to it (if it is the newest approved)."""
        if version not in self.versions(name):
            raise RegistryError(f"model {name!r} has no version {version!r}; have {self.versions(name)}")
        self.store.write(f"{name}/{version}/approved.json", json.dumps({"by": by, "at": time.time()}).encode())

    def is_approved(self, name: str, version: str) -> bool:
        return self.store.exists(f"{name}/{version}/approved.json")

    def resolve(self, name: str, version: str = "approved") -> str:
        """The concrete version a selector names."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no model named {name!r} in {self.uri}")
        if version == "latest":
            return versions[-1]
        if version == "approved":
            approved = [v for v in versions if self.is_approved(name, v)]
            if not approved:
                raise RegistryError(f"model {name!r} has no approved version (have {versions}); approve one first")
            return approved[-1]
        if version not in versions:
            raise RegistryError(f"model {name!r} has no version {version!r}; have {versions}")
        return version

    def meta(self, name: str, version: str = "approved") -> ModelMeta:
        v = self.resolve(name, version)
        raw = json.loads(self.store.read(f"{name}/{v}/meta.json"))
        raw["feature_names"] = tuple(raw["feature_names"])
        raw["data_range"] = tuple(raw["data_range"])
        return ModelMeta(**raw)

    def load(self, name: str, version: str = "approved", *, feature_version: str) -> tuple[ModelMeta, bytes]:
        """Metadata and artifact; refuse a model built for other features or a corrupted artifact."""
        meta = self.meta(name, version)
        if meta.feature_version != feature_version:
            raise RegistryError(
                f"model {name}/{meta.version} was built for features {meta.feature_version!r}, "
                f"this code computes {feature_version!r}: retrain or pin a compatible version"
            )
        raw = self.store.read(f"{name}/{meta.version}/model.bin")
        if hashlib.sha256(raw).hexdigest() != meta.sha256:
            raise RegistryError(f"model {name}/{meta.version}: artifact checksum mismatch (corrupted or tampered)")
        return meta, raw


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
