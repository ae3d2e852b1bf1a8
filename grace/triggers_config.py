"""The options each trigger owns, declared in the core so config can validate them.

A trigger reads its own options, `cfg.thresholds.<its name>`, and no other
trigger's (a test runs each trigger with every other trigger's options poisoned).
In grace.yaml every option sits flat under `thresholds:` (the file format keeps
one section): the section's keys are the union of the
structs below, and an option two triggers both declare (`full_verify_every`)
is one key with one meaning and one default, which a test holds them to.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from grace.durations import Duration
from grace.errors import ConfigError


class TriggerOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The options of the trigger named TRIGGER."""

    TRIGGER: ClassVar[str]


class HealthSignalOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """None under `thresholds:`: its knobs are per kernel (heartbeat_timeout, health_url)."""

    TRIGGER: ClassVar[str] = "health_signal"


class LatencyQueueOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True, kw_only=True):
    TRIGGER: ClassVar[str] = "latency_queue"
    latency_window: Duration = Duration(300)
    latency_probes: int = 3  # HTTP probes of each health_url per cycle
    latency_min_samples: int = 5  # p95 needs at least this many samples in latency_window


class ConfigDriftOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True, kw_only=True):
    TRIGGER: ClassVar[str] = "config_drift"
    full_verify_every: int = 10  # every Nth run rehashes every file, not only changed ones


class DependencyRegressionOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True,
                                  kw_only=True):
    """None under `thresholds:`: it reads `dependencies:`."""

    TRIGGER: ClassVar[str] = "dependency_regression"


class ModelIntegrityOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True, kw_only=True):
    TRIGGER: ClassVar[str] = "model_integrity"
    full_verify_every: int = 10  # every Nth run checks structure and hash of every model


class ResourcePressureOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True,
                              kw_only=True):
    TRIGGER: ClassVar[str] = "resource_pressure"
    cpu_percent: float = 90.0
    memory_percent: float = 90.0
    sustained_samples: int = 3


class PreBootCodeDiffOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True,
                             kw_only=True):
    """None under `thresholds:`: it reads `code:`."""

    TRIGGER: ClassVar[str] = "pre_boot_code_diff"


class LiveErrorFeedOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True, kw_only=True):
    TRIGGER: ClassVar[str] = "live_error_feed"
    error_repeats: int = 5
    error_window: Duration = Duration(300)


class TelemetryDriftOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True,
                            kw_only=True):
    TRIGGER: ClassVar[str] = "telemetry_drift"
    drift_psi: float = 0.25
    drift_min_samples: int = 100  # PSI needs this many baseline and recent samples
    # the latency samples it compares come from latency_queue's probes: as many per run
    latency_probes: int = 3


class PredictiveFailureOptions(TriggerOptions, frozen=True, forbid_unknown_fields=True,
                               kw_only=True):
    TRIGGER: ClassVar[str] = "predictive_failure"
    failure_horizon: Duration = Duration(3600)
    trend_samples: int = 60  # it fits the last N samples of each series
    trend_min_samples: int = 6
    trend_min_r2: float = 0.6  # a fit weaker than this predicts nothing
    exhaustion_percent: float = 95.0  # memory/disk % counted as exhausted
    error_rate_limit: float = 5.0  # error lines per second counted as failure


OPTIONS: dict[str, type[TriggerOptions]] = {cls.TRIGGER: cls for cls in (
    HealthSignalOptions, LatencyQueueOptions, ConfigDriftOptions, DependencyRegressionOptions,
    ModelIntegrityOptions, ResourcePressureOptions, PreBootCodeDiffOptions, LiveErrorFeedOptions,
    TelemetryDriftOptions, PredictiveFailureOptions)}


class Thresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every trigger's options, by trigger name (in grace.yaml: flat under `thresholds:`)."""

    health_signal: HealthSignalOptions = HealthSignalOptions()
    latency_queue: LatencyQueueOptions = LatencyQueueOptions()
    config_drift: ConfigDriftOptions = ConfigDriftOptions()
    dependency_regression: DependencyRegressionOptions = DependencyRegressionOptions()
    model_integrity: ModelIntegrityOptions = ModelIntegrityOptions()
    resource_pressure: ResourcePressureOptions = ResourcePressureOptions()
    pre_boot_code_diff: PreBootCodeDiffOptions = PreBootCodeDiffOptions()
    live_error_feed: LiveErrorFeedOptions = LiveErrorFeedOptions()
    telemetry_drift: TelemetryDriftOptions = TelemetryDriftOptions()
    predictive_failure: PredictiveFailureOptions = PredictiveFailureOptions()


def owners() -> dict[str, list[str]]:
    """Each flat `thresholds:` key -> the triggers that declare it."""
    found: dict[str, list[str]] = {}
    for name, cls in OPTIONS.items():
        for key in cls.__struct_fields__:
            found.setdefault(key, []).append(name)
    return found


def _flat_struct() -> type[msgspec.Struct]:
    """The flat `thresholds:` section: every trigger's options, one field per key."""
    fields: dict[str, tuple[Any, Any]] = {}
    for cls in OPTIONS.values():
        for f in msgspec.structs.fields(cls):
            fields.setdefault(f.name, (f.type, f.default))
    return msgspec.defstruct("FlatThresholds", [(k, t, d) for k, (t, d) in fields.items()],
                             frozen=True, forbid_unknown_fields=True, kw_only=True)


FlatThresholds = _flat_struct()


def compose(flat: msgspec.Struct) -> Thresholds:
    """The per-trigger options from a validated flat section."""
    return msgspec.structs.replace(Thresholds(), **{
        name: cls(**{k: getattr(flat, k) for k in cls.__struct_fields__})
        for name, cls in OPTIONS.items()})


def with_values(thresholds: Thresholds, **values: Any) -> Thresholds:
    """`thresholds` with these flat keys changed in every trigger declaring them, as the same
    keys under `thresholds:` in grace.yaml would (values are not validated here)."""
    unknown = sorted(set(values) - set(owners()))
    if unknown:
        raise ConfigError(f"unknown thresholds key(s) {', '.join(unknown)}; the keys are "
                          f"{', '.join(owners())}")
    return msgspec.structs.replace(thresholds, **{
        name: msgspec.structs.replace(getattr(thresholds, name),
                                      **{k: v for k, v in values.items() if k in cls.__struct_fields__})
        for name, cls in OPTIONS.items()})
