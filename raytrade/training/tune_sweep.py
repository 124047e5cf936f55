"""``raytrade tune``: a Ray Tune ASHA search whose objective is the walk-forward out-of-sample IC."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raytrade.training.datasets import Dataset
from raytrade.training.metrics import information_coefficient
from raytrade.training.model_loading import SIGNAL_KINDS
from raytrade.training.registry import ModelRegistry
from raytrade.training.splits import walk_forward
from raytrade.training.train import base_meta, dataset_for
from raytrade.training.tune_config import TuneConfig

METRIC = "ic_mean"  # mean out-of-sample IC over the folds evaluated so far


def search_space(cfg: TuneConfig) -> dict[str, Any]:
    """The YAML search space as Tune domains."""
    out: dict[str, Any] = {}
    for name, spec in cfg.search_space.items():
        kind, args = next(iter(spec.items()))
        if kind == "uniform":
            out[name] = tune.uniform(float(args[0]), float(args[1]))
        elif kind == "loguniform":
            out[name] = tune.loguniform(float(args[0]), float(args[1]))
        elif kind == "randint":
            out[name] = tune.randint(int(args[0]), int(args[1]) + 1)
        else:
            out[name] = tune.choice(list(args))
    return out


def fold_scores(kind: str, params: dict[str, Any], seed: int, data: Dataset, n_folds: int, min_train: float) -> Any:
    """Yield (fold, IC) for each walk-forward fold: the model refit on the fold's training rows."""
    for f in walk_forward(data.start, n_folds, data.horizon, min_train_fraction=min_train):
        model = SIGNAL_KINDS[kind](params, seed)
        model.fit(data, f.train)
        yield f.index, information_coefficient(model.predict(data, f.test), data.forward_return[f.test])


def _trainable(config: dict[str, Any], data: Dataset, kind: str, seed: int, n_folds: int, min_train: float) -> None:
    ics: list[float] = []
    for fold, ic in fold_scores(kind, config, seed, data, n_folds, min_train):
        ics.append(ic)
        tune.report({"fold": fold, "ic": ic, METRIC: float(np.mean(ics)), "folds_done": len(ics)})


def run_sweep(cfg: TuneConfig, log: Any = print) -> dict[str, Any]:
    """Run the sweep, refit the best complete trial on all data, register it; return a summary."""
    t0 = time.monotonic()
    data = dataset_for(cfg.data)
    space = search_space(cfg)
    unknown = sorted(set(space) - set(SIGNAL_KINDS[cfg.model](None, cfg.seed).params))
    if unknown:
        raise ValueError(f"search_space: {cfg.model} has no hyperparameter(s) {unknown}")
    storage = str(Path(cfg.storage_path).resolve())
    started_ray = not ray.is_initialized()
    if started_ray:
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=cfg.num_cpus,
                object_store_memory=cfg.object_store_mb * 1024 * 1024,
                include_dashboard=False,
                log_to_driver=False,
            )
    try:
        trainable = tune.with_resources(
            tune.with_parameters(
                _trainable,
                data=data,
                kind=cfg.model,
                seed=cfg.seed,
                n_folds=cfg.evaluation.n_folds,
                min_train=cfg.evaluation.min_train_fraction,
            ),
            {"cpu": cfg.cpus_per_trial},
        )
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg.evaluation.n_folds,
            grace_period=min(cfg.scheduler.grace_period, cfg.evaluation.n_folds),
            reduction_factor=cfg.scheduler.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                num_samples=cfg.num_samples,
                max_concurrent_trials=cfg.max_concurrent_trials,
                search_alg=tune.search.BasicVariantGenerator(random_state=cfg.seed),
            ),
            run_config=tune.RunConfig(name=cfg.experiment_name, storage_path=storage, verbose=1),
        )
        results = tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
    trials: list[dict[str, Any]] = []
    for r in (results[i] for i in range(len(results))):
        if r.error or r.metrics is None:
            trials.append({"config": r.config, "error": str(r.error)})
            continue
        trials.append({"config": r.config, METRIC: r.metrics[METRIC], "folds_done": r.metrics["folds_done"]})
    complete = [t for t in trials if t.get("folds_done") == cfg.evaluation.n_folds]
    if not complete:
        raise RuntimeError(f"no trial finished all {cfg.evaluation.n_folds} folds; see {storage}")
    best = max(complete, key=lambda t: t[METRIC])
    log(f"best of {len(trials)} trials ({len(complete)} ran every fold): {METRIC}={best[METRIC]:.5f} {best['config']}")
    model = SIGNAL_KINDS[cfg.model](best["config"], cfg.seed)
    model.fit(data, np.arange(len(data)))

    common = base_meta(cfg.model_dump(mode="json"), data, cfg.data.source)
    common["extra"].update(tune={"storage_path": storage, "experiment": cfg.experiment_name, "trials": len(trials)})
    name = cfg.export_name or f"{cfg.model}_tuned"
    meta = ModelRegistry(cfg.registry).register(
        {
            **common,
            "name": name,
            "kind": model.kind,
            "params": {**model.params, "seed": cfg.seed},
            "metrics": {"cv_ic_mean": float(best[METRIC]), "cv_folds": float(cfg.evaluation.n_folds)},
        },
        model.to_bytes(),
        approve=cfg.approve,
    )
    return {
        "best": best,
        "trials": trials,
        "stopped_early": len(trials) - len(complete),
        "storage_path": storage,
        "experiment_path": str(Path(storage) / cfg.experiment_name),
        "registered": {"name": name, "version": meta.version, "approved": cfg.approve},
        "wall_s": round(time.monotonic() - t0, 2),
    }
