"""Deploy the Serve application from ``configs/serve.yaml`` (the same path ``serve deploy`` takes)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml
from ray import serve
from ray.serve.context import _get_global_client
from ray.serve.schema import ServeDeploySchema

from raytrade.cluster.config import ConfigError

APP_NAME = "raytrade"


def load_serve_config(path: str | Path, **args: Any) -> dict[str, Any]:
    """The Serve config at ``path`` with the raytrade app's ``args`` overridden by non-None ``args``.

    ``port`` and ``host`` override ``http_options``; a relative ``registry`` is made absolute
    (replicas do not share the caller's working directory).
    """
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a Serve config mapping")
    cfg: dict[str, Any] = copy.deepcopy(raw)
    http = cfg.setdefault("http_options", {})
    for key in ("host", "port"):
        if args.get(key) is not None:
            http[key] = args.pop(key)
        args.pop(key, None)
    apps = [a for a in cfg.get("applications", []) if a.get("name") == APP_NAME]
    if not apps:
        raise ConfigError(f"{path}: no application named {APP_NAME!r}")
    app_args = apps[0].setdefault("args", {})
    app_args.update({k: v for k, v in args.items() if v is not None})
    if "registry" in app_args and "://" not in str(app_args["registry"]):
        app_args["registry"] = str(Path(app_args["registry"]).resolve())
    try:
        ServeDeploySchema.model_validate(cfg)
    except Exception as exc:
        raise ConfigError(f"{path}: invalid Serve config: {exc}") from None
    return cfg


def deploy(cfg: dict[str, Any], timeout_s: float = 120.0) -> str:
    """Start Serve on the connected Ray cluster and apply ``cfg``; wait until the app runs. Returns its URL."""
    http = cfg.get("http_options", {})
    host, port = http.get("host", "127.0.0.1"), int(http.get("port", 8000))
    serve.start(http_options={"host": host, "port": port}, logging_config=cfg.get("logging_config"))
    client = _get_global_client()
    assert client is not None
    client.deploy_apps(ServeDeploySchema.model_validate(cfg))
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(APP_NAME)
        if status is not None and status.status == "RUNNING":
            return f"http://{host}:{port}"
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"Serve application {APP_NAME!r} {status.status}: {status.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve application {APP_NAME!r} not running after {timeout_s:.0f} s")
        time.sleep(0.25)
