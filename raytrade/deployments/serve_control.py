"""Change a deployed application's config the way ``serve deploy`` does (declarative apply on the controller).

A model swap edits one deployment's ``user_config`` in the application's config and applies
the whole config again: Serve sees a config-only change and calls ``reconfigure`` on the
running replicas (no restart, no dropped requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema


def _controller() -> Any:
    return ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)


def app_configs_from(raw: dict[str, Any]) -> ServeDeploySchema:
    """A ``serve build``-format config (as in ``configs/serve.yaml``) validated as Serve would."""
    return ServeDeploySchema.model_validate(raw)


async def user_configs(app_name: str, deployments: list[str]) -> dict[str, dict[str, Any] | None]:
    """The declared ``user_config`` of each named deployment (what a rollback applies again); ``None``
    where the config declares none (the application's code sets it)."""
    apps: dict[str, ServeApplicationSchema] = await _controller().get_app_configs.remote()
    if app_name not in apps:
        raise LookupError(f"application {app_name!r} was not deployed from a config")
    declared = {d.get("name"): d for d in apps[app_name].model_dump(exclude_unset=True).get("deployments", [])}
    return {name: declared.get(name, {}).get("user_config") for name in deployments}


async def set_user_configs(app_name: str, user_configs: Mapping[str, dict[str, Any] | None]) -> None:
    """Apply the deployed config again with each named deployment's ``user_config`` replaced (one apply);
    ``None`` removes the override, so the application's code sets it again.

    Raises :class:`LookupError` when the application was not deployed from a config
    (``serve deploy`` / ``raytrade serve``): an imperatively deployed app has no config to edit.
    """
    controller = _controller()
    apps: dict[str, ServeApplicationSchema] = await controller.get_app_configs.remote()
    if app_name not in apps:
        raise LookupError(
            f"application {app_name!r} was not deployed from a config; deploy it with "
            "`serve deploy configs/serve.yaml` or `raytrade serve` to swap models at run time"
        )
    raw = [a.model_dump(exclude_unset=True) for a in apps.values()]
    target = next(a for a in raw if a["name"] == app_name)
    deployments = target.setdefault("deployments", [])
    for name, user_config in user_configs.items():
        entry = next((d for d in deployments if d.get("name") == name), None)
        if entry is None:
            entry = {"name": name}
            deployments.append(entry)
        if user_config is None:
            entry.pop("user_config", None)
        else:
            entry["user_config"] = user_config
    await controller.apply_config.remote(ServeDeploySchema.model_validate({"applications": raw}))
