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


class InvalidOrderingKeyError(EventError):
    pass


class InvalidIdempotencyKeyError(EventError):
    pass


class InvalidChannelsError(EventError):
    pass


class BatchTooLargeError(EventError):
    """A batch holds more events than one call may send; nothing was stored."""


class TooManyTestSendsError(EventError):
    """The tenant has as many test sends pending as it may; one may be tried after `retry_after`."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EndpointUnverifiedError(EventError):
    """The endpoint has not echoed its ownership challenge: it receives nothing else, tests too."""


class TenantInactiveError(UnknownTenantError):
    """The tenant was deactivated: it emits nothing until it is active again."""


class EmitQuotaExceededError(EventError):
    """The tenant emitted its `max_events_per_second` already; nothing was stored. The emit may
    be tried again after `retry_after` whole seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
