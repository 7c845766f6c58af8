"""Signals of the delivery engine: how layers above it (operations, host code) hear what it does.

The engine never imports the layers above it; they connect here. Each is sent after the state it
reports is committed, through `config.signals.send_robustly`: a receiver that raises is logged
and stops neither the others nor the engine.
"""

from __future__ import annotations

from django.dispatch import Signal

# A batch's attempts were stored, in the worker that made them. Sender: Delivery. Arguments:
# outcomes (list of deliveries.claims.Outcome). Counted for /metrics by operations.metrics.
attempts_recorded = Signal()

# Deliveries to these endpoints were dead-lettered, and that is committed. Sender: Delivery.
# Arguments: endpoint_ids (set of int). Checked against the alert threshold by operations.alerts.
deliveries_dead_lettered = Signal()

# The sweeper looked for due work. Sender: Delivery. Arguments: at (datetime), anything_due
# (bool). Operations raises and clears its alerts on it.
deliveries_swept = Signal()

# The operational alerts, for host code (sent by operations.alerts, once per condition; they were
# always imported from here).
# An endpoint's dead letters passed WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD. Sender: Endpoint.
# Arguments: endpoint (Endpoint), dead_letters (int, counted up to 10,000), threshold (int).
dead_letters_over_threshold = Signal()

# Deliveries were due more than WEBHOOKS_OVERDUE_ALERT_SECONDS ago and no worker took them.
# Sender: Delivery. Arguments: deliveries (int, counted up to 10,000), oldest_due_at (datetime),
# late_by (float, the setting's seconds).
deliveries_overdue = Signal()

# No delivery is overdue any more. Sender: Delivery. Arguments: overdue_since (datetime, when the
# alert was raised), recovered_at (datetime).
deliveries_overdue_recovered = Signal()
