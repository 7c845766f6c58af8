"""Signals host code can connect to, about the delivery system's health.

Each is sent once per condition, from the process that saw it, after the state it reports is
committed (see operations.alerts). A receiver that raises is logged and does not stop the others
or the email and operational webhook that go with it.
"""

from django.dispatch import Signal

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
