"""The retry policy `deliveries.retry.decide`: a pure function, tested without I/O."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliveries.retry import RETRY_AFTER_CAP, Action, Decision, decide
from deliveries.transport import parse_retry_after

SCHEDULE = (5.0, 300.0, 1800.0)


def decide_after(
    status: int | None,
    *,
    attempt_number: int = 1,
    error_kind: str = "",
    retry_after: float | None = None,
    schedule: tuple[float, ...] = SCHEDULE,
    retry_client_errors: bool = True,
    single_attempt: bool = False,
    seed: int = 1,
) -> Decision:
    if status is not None and not 200 <= status < 300 and not error_kind:
        error_kind = "http_status"
    return decide(
        attempt_number=attempt_number,
        status=status,
        error_kind=error_kind,
        retry_after=retry_after,
        schedule=schedule,
        retry_client_errors=retry_client_errors,
        single_attempt=single_attempt,
        rng=random.Random(seed),
    )


def assert_retried_on_schedule(decision: Decision, attempt_number: int) -> None:
    base = SCHEDULE[attempt_number - 1]
    assert decision.action is Action.RETRY
    assert decision.delay is not None
    assert 0.8 * base <= decision.delay <= 1.2 * base


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_succeeds_without_delay(status):
    assert decide_after(status) == Decision(Action.SUCCEED)


def test_2xx_succeeds_even_after_the_schedule_ran_out():
    assert decide_after(200, attempt_number=len(SCHEDULE) + 5).action is Action.SUCCEED


def test_410_gone_disables_the_endpoint():
    assert decide_after(410) == Decision(Action.DISABLE_ENDPOINT)


def test_410_disables_the_endpoint_even_when_client_errors_are_not_retried():
    assert decide_after(410, retry_client_errors=False).action is Action.DISABLE_ENDPOINT


def test_410_disables_the_endpoint_even_after_the_schedule_ran_out():
    assert decide_after(410, attempt_number=len(SCHEDULE) + 1).action is Action.DISABLE_ENDPOINT


def test_target_blocked_by_network_policy_is_given_up_at_once():
    assert decide_after(None, error_kind="blocked") == Decision(Action.GIVE_UP)


@pytest.mark.parametrize(
    ("status", "error_kind"),
    [
        (500, "http_status"),
        (502, "http_status"),
        (503, "http_status"),
        (None, "timeout"),
        (None, "connection"),
        (None, "tls"),
        (None, "invalid_response"),
        (408, "http_status"),
        (429, "http_status"),
    ],
)
@pytest.mark.parametrize("attempt_number", [1, 2, 3])
def test_transient_failure_is_retried_with_jittered_scheduled_delay(
    status, error_kind, attempt_number
):
    decision = decide_after(status, error_kind=error_kind, attempt_number=attempt_number)
    assert_retried_on_schedule(decision, attempt_number)


def test_delay_is_jittered_not_the_bare_scheduled_value():
    delays = {decide_after(503, seed=seed).delay for seed in range(20)}
    assert len(delays) == 20
    assert all(4.0 <= delay <= 6.0 for delay in delays)
    assert min(delays) < 4.8
    assert max(delays) > 5.2


def test_same_seed_gives_same_delay():
    assert decide_after(503, seed=42).delay == decide_after(503, seed=42).delay


@pytest.mark.parametrize(("status", "error_kind"), [(503, "http_status"), (None, "timeout")])
def test_failure_after_last_scheduled_delay_gives_up(status, error_kind):
    decision = decide_after(status, error_kind=error_kind, attempt_number=len(SCHEDULE) + 1)
    assert decision == Decision(Action.GIVE_UP)


def test_last_scheduled_attempt_is_still_retried():
    assert_retried_on_schedule(decide_after(503, attempt_number=len(SCHEDULE)), len(SCHEDULE))


def test_empty_schedule_never_retries():
    assert decide_after(503, schedule=()).action is Action.GIVE_UP


def test_retry_after_longer_than_the_schedule_raises_the_delay():
    decision = decide_after(503, retry_after=120.0)
    assert decision == Decision(Action.RETRY, 120.0)


def test_retry_after_shorter_than_the_schedule_does_not_shorten_the_delay():
    decision = decide_after(429, attempt_number=2, retry_after=1.0)
    assert_retried_on_schedule(decision, 2)


def test_retry_after_is_capped_at_an_hour():
    decision = decide_after(429, retry_after=10 * RETRY_AFTER_CAP)
    assert RETRY_AFTER_CAP == 3600.0
    assert decision == Decision(Action.RETRY, RETRY_AFTER_CAP)


def test_retry_after_does_not_extend_the_schedule():
    decision = decide_after(503, attempt_number=len(SCHEDULE) + 1, retry_after=10.0)
    assert decision.action is Action.GIVE_UP


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_error_is_retried_by_default(status):
    assert_retried_on_schedule(decide_after(status), 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 499])
def test_client_error_gives_up_when_client_errors_are_not_retried(status):
    assert decide_after(status, retry_client_errors=False) == Decision(Action.GIVE_UP)


@pytest.mark.parametrize("status", [408, 429])
def test_408_and_429_are_retried_even_when_client_errors_are_not(status):
    assert_retried_on_schedule(decide_after(status, retry_client_errors=False), 1)


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_retried_when_client_errors_are_not(status):
    assert_retried_on_schedule(decide_after(status, retry_client_errors=False), 1)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_a_failed_attempt_that_is_retried(status):
    assert_retried_on_schedule(decide_after(status), 1)
    assert_retried_on_schedule(decide_after(status, retry_client_errors=False), 1)


failure_statuses = st.integers(min_value=100, max_value=599).filter(
    lambda status: not 200 <= status < 300 and status != 410
)


@given(
    schedule=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=10
    ),
    data=st.data(),
    status=failure_statuses,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_stays_within_20_percent_of_the_schedule_without_retry_after(
    schedule, data, status, seed
):
    attempt_number = data.draw(st.integers(min_value=1, max_value=len(schedule)))
    base = schedule[attempt_number - 1]

    decision = decide(
        attempt_number=attempt_number,
        status=status,
        error_kind="http_status",
        retry_after=None,
        schedule=schedule,
        rng=random.Random(seed),
    )

    assert decision.action is Action.RETRY
    assert decision.delay is not None
    slack = 1e-9 * base  # rounding of base * uniform(0.8, 1.2)
    assert 0.8 * base - slack <= decision.delay <= 1.2 * base + slack


def decide_single_attempt(status: int | None, **options: object) -> Decision:
    return decide_after(status, single_attempt=True, **options)


@pytest.mark.parametrize(
    ("status", "error_kind"),
    [
        (500, "http_status"),
        (503, "http_status"),
        (408, "http_status"),
        (429, "http_status"),
        (400, "http_status"),
        (301, "http_status"),
        (None, "timeout"),
        (None, "connection"),
        (None, "tls"),
        (None, "invalid_response"),
    ],
)
def test_single_attempt_gives_up_on_its_first_failure(status, error_kind):
    assert decide_single_attempt(status, error_kind=error_kind) == Decision(Action.GIVE_UP)


def test_single_attempt_gives_up_whatever_the_schedule_or_retry_after_say():
    long_schedule = (3600.0,) * 20
    decision = decide_single_attempt(503, schedule=long_schedule, retry_after=5.0)
    assert decision == Decision(Action.GIVE_UP)
    assert decide_single_attempt(503, attempt_number=4, schedule=long_schedule).action is (
        Action.GIVE_UP
    )


def test_the_same_failure_without_single_attempt_is_retried():
    assert_retried_on_schedule(decide_after(503), 1)
    assert decide_single_attempt(503).action is Action.GIVE_UP


@pytest.mark.parametrize("status", [200, 201, 204, 299])
@pytest.mark.parametrize("attempt_number", [1, 8])
def test_single_attempt_2xx_still_succeeds(status, attempt_number):
    decision = decide_single_attempt(status, attempt_number=attempt_number)
    assert decision == Decision(Action.SUCCEED)


@pytest.mark.parametrize("attempt_number", [1, 8])
def test_single_attempt_410_still_disables_the_endpoint(attempt_number):
    decision = decide_single_attempt(410, attempt_number=attempt_number)
    assert decision == Decision(Action.DISABLE_ENDPOINT)


@pytest.mark.parametrize("status", [400, 404])
@pytest.mark.parametrize("attempt_number", [1, 2, 3])
def test_without_client_error_retries_400_and_404_give_up_at_any_attempt(status, attempt_number):
    decision = decide_after(status, attempt_number=attempt_number, retry_client_errors=False)
    assert decision == Decision(Action.GIVE_UP)


@pytest.mark.parametrize("status", [408, 429, 500])
@pytest.mark.parametrize("attempt_number", [1, 2, 3])
def test_without_client_error_retries_408_429_and_500_are_still_retried(status, attempt_number):
    decision = decide_after(status, attempt_number=attempt_number, retry_client_errors=False)
    assert_retried_on_schedule(decision, attempt_number)


# --- Retry-After, in seconds or as an HTTP-date ----------------------------------------------

NOW = datetime(2026, 12, 4, 15, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Fri, 04 Dec 2026 15:02:00 GMT", 120.0),  # IMF-fixdate, the preferred form
        ("Friday, 04-Dec-26 15:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Fri Dec  4 15:00:05 2026", 5.0),  # obsolete asctime form, GMT by definition
        ("Fri, 04 Dec 2026 16:00:00 +0100", 0.0),  # the same instant as NOW
        ("Fri, 04 Dec 2026 14:59:00 GMT", 0.0),  # past: now
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 04 Dec 2026 17:00:00 GMT", 7200.0),  # over the cap: decide() caps it
    ],
)
def test_retry_after_is_read_in_seconds_and_as_an_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [None, "", "soon", "-5", "1e3", "nan", "inf", "0x10", "Fri, 32 Dec 2026 15:00:00 GMT",
     "Fri, 04 Dec 2026 25:00:00 GMT", "Fri, 04 Foo 2026 15:00:00 GMT", "2026-12-04T15:02:00Z",
     "Fri, 04 Dec 99999 15:00:00 GMT", "\x00", "１２"],
)  # fmt: skip
def test_garbage_retry_after_is_ignored(header):
    assert parse_retry_after(header, now=NOW) is None


@given(text=st.text(max_size=60))
def test_retry_after_parsing_never_raises_and_never_goes_negative(text):
    seconds = parse_retry_after(text, now=NOW)
    assert seconds is None or seconds >= 0


@given(
    # Hypothesis takes naive bounds; `timezones` makes every value it draws aware.
    when=st.datetimes(
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001
        max_value=datetime(9000, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_an_http_date_means_the_seconds_until_it_or_now_if_past(when):
    when = when.replace(microsecond=0)  # an HTTP-date holds whole seconds

    seconds = parse_retry_after(format_datetime(when, usegmt=True), now=NOW)

    assert seconds == max(0.0, (when - NOW).total_seconds())


def test_an_http_date_retry_after_is_capped_like_the_seconds_form():
    in_a_day = format_datetime(NOW + timedelta(days=1), usegmt=True)
    from_date = decide_after(503, retry_after=parse_retry_after(in_a_day, now=NOW))
    from_seconds = decide_after(503, retry_after=parse_retry_after("86400", now=NOW))
    assert from_date == from_seconds == Decision(Action.RETRY, RETRY_AFTER_CAP)


def test_a_past_http_date_leaves_the_scheduled_delay():
    past = parse_retry_after("Fri, 04 Dec 2026 14:00:00 GMT", now=NOW)
    assert_retried_on_schedule(decide_after(503, retry_after=past), 1)
