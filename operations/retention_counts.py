"""What a retention purge would do to deliveries, events and attempts now, counted, changing
nothing (`manage.py purge --dry-run`): each row judged by its tenant's cutoff, its own or the
global one, as the purge judges it (operations.retention, operations.retention_tenants), step by
step in the purge's order. The counts read whole tables; the purge itself never does.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from deliveries.models import Attempt, Delivery
from operations.retention_partitions import BLANK_CAPTURE, attempts_in_purged_partitions
from operations.retention_resume import BLANKED_ATTEMPTS, CHECKED_EVENTS
from operations.retention_tenants import RetentionCutoffs
from webhooks.models import Event

SUCCEEDED = Delivery.Status.SUCCEEDED


def history_counts(cutoffs: RetentionCutoffs, *, partitioned: bool) -> dict[str, int]:
    """The deliveries, events and attempts a purge by `cutoffs` would delete, and the attempts
    it would blank, now (PurgeCounts' categories)."""
    succeeded = Q(status=SUCCEEDED)
    # The deliveries of the global walk, and those of tenants with a retention of their own.
    doomed_globally = succeeded & cutoffs.passed_globally("finished_at", "endpoint__tenant_id")
    doomed_own = succeeded & cutoffs.passed_own("finished_at", "endpoint__tenant_id")
    doomed = doomed_globally | doomed_own
    # Kept deliveries' attempts that the tenants' own walks blank, before any partition goes.
    blanked_own = (
        Attempt.objects.filter(cutoffs.passed_own("started_at", "delivery__endpoint__tenant_id"))
        .exclude(delivery__in=Delivery.objects.filter(doomed))
        .exclude(**BLANK_CAPTURE)
    )
    counts = {
        "deliveries": Delivery.objects.filter(doomed).count(),
        "events": _events_left_without_deliveries(cutoffs, doomed),
        "attempts_blanked": blanked_own.count(),
    }
    if partitioned:
        # The global walk deletes its deliveries' archived attempts (the others go with their
        # day); the tenants' walks all of theirs; then each day past the global cutoff goes, its
        # attempts of kept deliveries archived.
        archived_of_doomed = Attempt.objects.filter(
            archived=True, delivery__in=Delivery.objects.filter(doomed_globally)
        ).count()
        of_doomed_own = Attempt.objects.filter(
            delivery__in=Delivery.objects.filter(doomed_own)
        ).count()
        gone_before = Q(delivery__in=Delivery.objects.filter(doomed_own)) | Q(
            id__in=blanked_own.values("id")
        )
        in_days = attempts_in_purged_partitions(cutoffs.before).exclude(gone_before)
        kept = Delivery.objects.filter(id=OuterRef("delivery_id")).exclude(doomed)
        archived = in_days.filter(Exists(kept)).count()
        counts["attempts"] = archived_of_doomed + of_doomed_own + in_days.count() - archived
        counts["attempts_blanked"] += archived
    else:
        counts["attempts"] = Attempt.objects.filter(
            delivery__in=Delivery.objects.filter(doomed)
        ).count()
        blanked_globally = (
            Attempt.objects.filter(
                cutoffs.passed_globally("started_at", "delivery__endpoint__tenant_id"),
                id__gt=BLANKED_ATTEMPTS.start(),
            )
            .exclude(delivery__in=Delivery.objects.filter(doomed))
            .exclude(**BLANK_CAPTURE)
        )
        counts["attempts_blanked"] += blanked_globally.count()
    return counts


def _events_left_without_deliveries(cutoffs: RetentionCutoffs, doomed: Q) -> int:
    """Events older than their tenant's cutoff that keep no delivery: those whose deliveries go,
    and those that had none, but for those the global walk over events checked already."""
    of_event = Delivery.objects.filter(event_id=OuterRef("pk"))
    old = Event.objects.filter(cutoffs.passed("created_at", "tenant_id"))
    checked = cutoffs.passed_globally("created_at", "tenant_id") & Q(id__lte=CHECKED_EVENTS.start())
    return (
        old.exclude(Exists(of_event.exclude(doomed))).exclude(checked & ~Exists(of_event)).count()
    )
