from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from raytrade.cluster.config import ConfigError, load_config

DEFAULT = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


def test_default_config_loads() -> None:
    cfg = load_config(DEFAULT, env={})
    assert cfg.kafka.bootstrap_servers is None and cfg.kafka.backend == "confluent"
    assert [i.symbol for i in cfg.instruments] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert cfg.risk.max_order_notional == Decimal("25000")


def test_unknown_keys_are_rejected_with_their_path(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(DEFAULT.read_text() + "\nrisk_typo: 1\n")
    with pytest.raises(ConfigError, match="risk_typo: Extra inputs are not permitted"):
        load_config(p, env={})
    p.write_text(DEFAULT.read_text().replace("  max_order_notional:", "  max_order_notonial:"))
    with pytest.raises(ConfigError, match=r"risk\.max_order_notonial"):
        load_config(p, env={})


def test_bad_values_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(DEFAULT.read_text().replace("backend: confluent", "backend: librdkafka9"))
    with pytest.raises(ConfigError, match=r"kafka\.backend"):
        load_config(p, env={})
    p.write_text(DEFAULT.read_text().replace("long_above: 0.53", "long_above: 0.4"))
    with pytest.raises(ConfigError, match="short_below"):
        load_config(p, env={})


def test_environment_overrides_nested_keys() -> None:
    env = {"RAYTRADE__RISK__MAX_ORDER_NOTIONAL": "5000", "RAYTRADE__KAFKA__BACKEND": "kafka-python"}
    cfg = load_config(DEFAULT, env=env)
    assert cfg.risk.max_order_notional == Decimal("5000")
    assert cfg.kafka.backend == "kafka-python"
    with pytest.raises(ConfigError, match="nonsense"):
        load_config(DEFAULT, env={"RAYTRADE__RISK__NONSENSE": "1"})
