"""What operations listens to: the engine's signals, and the endpoints Hookline disables.

Connected once, when Django starts (OperationsConfig.ready): the engine and subscriptions never
import operations, which sits above them.
"""

from __future__ import annotations

from deliveries.signals import attempts_recorded, deliveries_dead_lettered, deliveries_swept
from operations.alerts import alerts_sweep, dead_letters_check
from operations.endpoint_notifications import notify_endpoint_disabled
from operations.metrics import outcomes_count
from subscriptions.signals import endpoint_disabled


def connect() -> None:
    attempts_recorded.connect(outcomes_count, dispatch_uid="operations.metrics")
    deliveries_dead_lettered.connect(dead_letters_check, dispatch_uid="operations.alerts")
    deliveries_swept.connect(alerts_sweep, dispatch_uid="operations.alerts")
    endpoint_disabled.connect(notify_endpoint_disabled, dispatch_uid="operations.notifications")
