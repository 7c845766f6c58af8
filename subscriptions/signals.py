"""Signals host code can connect to."""

from django.dispatch import Signal

# Sent once per endpoint that Hookline disables, after the change commits.
# Arguments: endpoint (the Endpoint, already disabled), reason (str).
endpoint_disabled = Signal()

# Sent inside the transaction that disables endpoints, so that what receivers write commits or
# rolls back with it: the engine holds their backlogs. Arguments: endpoint_ids (list of int).
endpoints_disabling = Signal()

# Sent inside the transaction that enables an endpoint again: the engine lets its backlog go.
# Arguments: endpoint_id (int), paused_until (datetime or None: the end of the circuit pause it
# had), at (datetime).
endpoint_enabling = Signal()

# Sent inside the transaction that gives an endpoint a fresh ownership challenge (it is new, its
# URL changed, or someone asked to verify it again): the engine holds its backlog and sends the
# challenge. Arguments: endpoint_id (int), challenge (str), is_active (bool).
endpoint_challenged = Signal()

# Sent inside the transaction that marks an endpoint verified (it echoed its challenge, or
# verification no longer applies to it): the engine lets its held backlog go.
# Arguments: endpoint_id (int), at (datetime).
endpoint_verified = Signal()
