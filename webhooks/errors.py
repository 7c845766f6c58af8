"""Errors `send_event` raises for input it refuses. Nothing is stored when one is raised."""


class EventError(ValueError):
    """Base class: the event was refused and nothing was stored."""


class UnknownTenantError(EventError):
    pass


class UnknownEventTypeError(EventError):
    pass


class InvalidPayloadError(EventError):
    pass


class PayloadTooLargeError(InvalidPayloadError):
    pass
