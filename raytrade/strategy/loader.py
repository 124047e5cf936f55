"""Load strategies from the config: ``{id, path: "package.module:Class" | "file.py:Class", params}``.

Every failure is a :class:`StrategyError` whose one-line message names the entry and its path:
a malformed path, a module that does not import, a missing class, a class that is not a
:class:`~raytrade.strategy.base.Strategy`, or params its ``Params`` model refuses.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from raytrade.strategy.base import Strategy, StrategyParams

_PATH = re.compile(r"^(?P<module>[^:]+):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class StrategyError(ValueError):
    """A strategy could not be loaded or configured; the message names which and why."""


@dataclass(frozen=True)
class StrategySpec:
    """One ``strategies`` entry: the strategy id (order-id prefix), its import path and params."""

    id: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)


def _module_from_file(file: Path, where: str) -> ModuleType:
    """Import a module from a ``.py`` file under a stable private name."""
    name = "raytrade_user_" + hashlib.sha1(str(file).encode()).hexdigest()[:12] + "_" + file.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise StrategyError(f"{where}: cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise StrategyError(f"{where}: importing {file} failed: {type(exc).__name__}: {exc}") from None
    return module


def resolve_path(path: str, base: Path | None = None) -> str:
    """``file.py:Class`` with a relative file becomes absolute (relative to ``base`` or the cwd)."""
    m = _PATH.match(path)
    if m is None or not m["module"].endswith(".py"):
        return path
    file = Path(m["module"])
    if not file.is_absolute():
        file = (base or Path.cwd()) / file
    return f"{file.resolve()}:{m['cls']}"


def strategy_class(path: str, where: str = "strategy") -> type[Strategy]:
    """The class named by ``path`` (``package.module:Class`` or ``path/to/file.py:Class``)."""
    m = _PATH.match(path)
    if m is None:
        raise StrategyError(f"{where}: path {path!r} must look like 'package.module:Class' or 'file.py:Class'")
    module_name, cls_name = m["module"], m["cls"]
    if module_name.endswith(".py"):
        file = Path(module_name)
        if not file.is_file():
            raise StrategyError(f"{where}: path {path!r}: no such file {file}")
        module = _module_from_file(file.resolve(), where)
    else:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise StrategyError(
                f"{where}: path {path!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise StrategyError(f"{where}: path {path!r}: module {module_name!r} has no class {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{where}: path {path!r}: {cls_name} is not a raytrade.strategy.Strategy subclass")
    return cls


def validate_params(cls: type[Strategy], params: Mapping[str, Any], where: str) -> StrategyParams:
    """``params`` through the class's pydantic ``Params`` model (unknown keys refused)."""
    try:
        return cls.Params.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors())
        raise StrategyError(f"{where} ({cls.__module__}:{cls.__name__}) params: {problems}") from None


def check_specs(specs: Sequence[StrategySpec]) -> list[type[Strategy]]:
    """Validate every entry (ids unique and well formed, classes load, params valid); the classes."""
    seen: set[str] = set()
    out = []
    for n, spec in enumerate(specs):
        where = f"strategies[{n}]"
        if not _ID.match(spec.id):
            raise StrategyError(f"{where}: id {spec.id!r} must match [A-Za-z0-9_-]{{1,64}} (it prefixes order ids)")
        if spec.id in seen:
            raise StrategyError(f"{where}: id {spec.id!r} is used twice; each strategy needs its own id")
        seen.add(spec.id)
        cls = strategy_class(spec.path, where)
        validate_params(cls, spec.params, where)
        out.append(cls)
    return out


def load_strategies(specs: Sequence[StrategySpec]) -> list[Strategy]:
    """New instances of every configured strategy (validated as :func:`check_specs` does)."""
    classes = check_specs(specs)
    return [
        cls(spec.id, validate_params(cls, spec.params, f"strategies[{n}]"))
        for n, (cls, spec) in enumerate(zip(classes, specs, strict=True))
    ]
