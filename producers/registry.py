"""The ten triggers, by name. Plain imports, no path scanning, nothing runs at import."""

from __future__ import annotations

from producers.base import Check
from producers.config_drift import ConfigDrift
from producers.dependency_regression import DependencyRegression
from producers.health_signal import HealthSignal
from producers.latency_queue import LatencyQueue
from producers.live_error_feed import LiveErrorFeed
from producers.model_integrity import ModelIntegrity
from producers.pre_boot_code_diff import PreBootCodeDiff
from producers.predictive_failure import PredictiveFailure
from producers.resource_pressure import ResourcePressure
from producers.telemetry_drift import TelemetryDrift

TRIGGERS: dict[str, type[Check]] = {
    cls.NAME: cls
    for cls in (HealthSignal, LatencyQueue, ConfigDrift, DependencyRegression, ModelIntegrity,
                ResourcePressure, PreBootCodeDiff, LiveErrorFeed, TelemetryDrift, PredictiveFailure)
}
