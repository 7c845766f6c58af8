"""Signals host code can connect to."""

from django.dispatch import Signal

# Sent once per endpoint that Hookline disables, after the change commits.
# Arguments: endpoint (the Endpoint, already disabled), reason (str).
endpoint_disabled = Signal()
