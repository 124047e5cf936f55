"""Model registry: versions, approval, pinning, metadata validation, feature and checksum guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytrade.domain.features import FEATURE_NAMES, FEATURE_VERSION
from raytrade.training.registry import ModelRegistry, RegistryError


def meta(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "m",
        "kind": "xgboost",
        "feature_version": FEATURE_VERSION,
        "feature_names": FEATURE_NAMES,
        "data_range": (1, 2),
        "params": {"eta": 0.1},
        "metrics": {"oos_ic": 0.05},
        "config_hash": "0123456789abcdef",
    }
    base.update(kw)
    return base


def test_versions_approval_and_pinning(tmp_path: Path) -> None:
    reg = ModelRegistry(f"file://{tmp_path}")
    assert reg.register(meta(), b"one", approve=True).version == "v0001"
    assert reg.register(meta(), b"two").version == "v0002"
    assert reg.load("m", "latest", feature_version=FEATURE_VERSION)[1] == b"two"
    assert reg.load("m", feature_version=FEATURE_VERSION)[1] == b"one"  # default: the newest approved
    assert reg.load("m", "v0002", feature_version=FEATURE_VERSION)[1] == b"two"  # pinned
    reg.approve("m", "v0002")
    m, raw = reg.load("m", "approved", feature_version=FEATURE_VERSION)
    assert (m.version, raw) == ("v0002", b"two")
    assert m.sha256 and m.code_version and m.created_at > 0 and m.feature_names == FEATURE_NAMES
    assert ModelRegistry(tmp_path).versions("m") == ["v0001", "v0002"]  # a plain path is the same store
    with pytest.raises(RegistryError, match="no version 'v0009'"):
        reg.load("m", "v0009", feature_version=FEATURE_VERSION)
    with pytest.raises(RegistryError, match="no model named 'other'"):
        reg.load("other", feature_version=FEATURE_VERSION)
    reg.register(meta(name="fresh"), b"x")
    with pytest.raises(RegistryError, match="no approved version"):
        reg.load("fresh", feature_version=FEATURE_VERSION)


def test_feature_version_mismatch_and_tampering_are_refused(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    reg.register(meta(feature_version="v0"), b"old", approve=True)
    with pytest.raises(RegistryError, match="built for features 'v0', this code computes 'v1'"):
        reg.load("m", feature_version=FEATURE_VERSION)
    reg.register(meta(), b"good", approve=True)
    (tmp_path / "m" / "v0002" / "model.bin").write_bytes(b"evil")
    with pytest.raises(RegistryError, match="checksum mismatch"):
        reg.load("m", feature_version=FEATURE_VERSION)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"name": "Bad Name"}, "name 'Bad Name' must match"),
        ({"feature_names": ()}, "feature_names must be a non-empty list"),
        ({"feature_names": ("a", "a")}, "feature_names has duplicates"),
        ({"data_range": (5, 1)}, "data_range must be"),
        ({"metrics": {"ic": float("nan")}}, "metric 'ic' must be a finite number"),
        ({"metrics": {"ic": "high"}}, "metric 'ic' must be a finite number"),
        ({"config_hash": "abc"}, "config_hash must be 16 hex digits"),
        ({"params": {"f": float("inf")}}, "params and extra must be JSON"),
        ({"kind": ""}, "kind is empty"),
    ],
)
def test_invalid_metadata_is_rejected_and_nothing_is_written(tmp_path: Path, bad: dict, message: str) -> None:  # type: ignore[type-arg]
    reg = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match=message):
        reg.register(meta(**bad), b"x")
    assert reg.names() == []


def test_unknown_storage_scheme_is_a_clear_error() -> None:
    with pytest.raises(RegistryError, match=r"no artifact store for 's3' URIs.*available: \['file'\]"):
        ModelRegistry("s3://bucket/models")
