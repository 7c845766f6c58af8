"""Validation of what starts a replay: the `since` of "every failed delivery since T".

One check for the API, the dashboard, the admin and `manage.py replay`, so that no entry point
stores a time the others cannot read back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

# Python's datetime stops at year 1 and 9999; PostgreSQL goes further both ways, so a time that
# fits before its conversion to UTC (0001-01-01T00:00+14:00) can still be stored but never read
# back. A day's margin keeps every stored time convertible to any time zone for display.
EARLIEST_SINCE = datetime(1, 1, 2, tzinfo=UTC)
LATEST_STORABLE = datetime(9999, 12, 30, tzinfo=UTC)
# A `since` a little ahead of this server's clock (the user's clock runs fast) replays nothing
# but harms nothing either; further ahead it is a mistake worth saying so.
FUTURE_TOLERANCE = timedelta(minutes=5)
_OUT_OF_RANGE = "The start time is out of range: give a time from the year 1 onwards, in UTC."


def replay_since_checked(moment: datetime) -> datetime:
    """`moment` in UTC, if a replay may start from it; raises ValidationError otherwise.

    A naive `moment` is read in the current time zone. Refused: times that fall outside the
    range a datetime holds once converted to UTC, and times in the future.
    """
    if timezone.is_naive(moment):
        try:
            moment = timezone.make_aware(moment)
        except (OverflowError, ValueError):
            raise ValidationError(_OUT_OF_RANGE, code="out_of_range") from None
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError(_OUT_OF_RANGE, code="out_of_range") from None
    if utc < EARLIEST_SINCE:
        raise ValidationError(_OUT_OF_RANGE, code="out_of_range")
    if utc > timezone.now() + FUTURE_TOLERANCE:
        raise ValidationError(
            "The start time is in the future: no delivery has failed since then yet.",
            code="future",
        )
    return utc


def validate_replay_since(moment: datetime) -> None:
    """A field validator: raises ValidationError unless `replay_since_checked` accepts `moment`."""
    replay_since_checked(moment)
