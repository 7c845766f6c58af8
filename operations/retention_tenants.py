"""Retention per tenant: `Tenant.retention_days` in place of WEBHOOKS_RETENTION_DAYS.

A tenant with its own retention keeps its events, deliveries and attempts for that many days (0:
for good), longer or shorter than the global window. operations.retention leaves such tenants out
of its walks by the global cutoff and purges each of their endpoints by its own cutoff instead;
on PostgreSQL, a partition of attempts that goes by the global cutoff archives the attempts of a
tenant that keeps them longer, with their captured headers and bodies as long as its own window
holds them (operations.retention_partitions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from subscriptions.models import Endpoint, Tenant


def retention_cutoff(*, days: int, now: datetime | None = None) -> datetime | None:
    """The time before which data goes, for a retention of `days`; None when 0 (keep all)."""
    if days <= 0:
        return None
    try:
        return (now or timezone.now()) - timedelta(days=days)
    except OverflowError:  # more days than the calendar holds: nothing is that old
        return datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TenantCutoff:
    """Tenants that share a retention: what is older than `before` goes (None: nothing does)."""

    before: datetime | None
    tenant_ids: tuple[int, ...]

    def endpoint_ids(self) -> list[int]:
        return list(
            Endpoint.objects.filter(tenant_id__in=self.tenant_ids)
            .order_by("id")
            .values_list("id", flat=True)
        )


@dataclass(frozen=True)
class RetentionCutoffs:
    """The global cutoff (None: retention off), and the tenants with one of their own."""

    before: datetime | None
    tenants: tuple[TenantCutoff, ...] = field(default=())

    @property
    def overridden_ids(self) -> list[int]:
        """The tenants that the global cutoff leaves alone."""
        return sorted(tenant_id for cutoff in self.tenants for tenant_id in cutoff.tenant_ids)

    def purges_anything(self) -> bool:
        return self.before is not None or any(c.before is not None for c in self.tenants)

    def not_overridden(self, tenant_path: str) -> Q:
        """Rows whose tenant (reached by `tenant_path`, such as `endpoint__tenant_id`) follows
        the global cutoff."""
        overridden = self.overridden_ids
        return ~Q(**{f"{tenant_path}__in": overridden}) if overridden else Q()

    def passed_globally(self, field: str, tenant_path: str) -> Q:
        """Rows of tenants following the global cutoff whose `field` is older than it."""
        if self.before is None:
            return Q(pk__in=[])
        return self.not_overridden(tenant_path) & Q(**{f"{field}__lt": self.before})

    def passed_own(self, field: str, tenant_path: str) -> Q:
        """Rows of tenants with a retention of their own whose `field` is older than it."""
        passed = Q(pk__in=[])
        for cutoff in self.tenants:
            if cutoff.before is not None:
                passed |= Q(
                    **{f"{tenant_path}__in": cutoff.tenant_ids, f"{field}__lt": cutoff.before}
                )
        return passed

    def passed(self, field: str, tenant_path: str) -> Q:
        """Rows whose `field` is older than their tenant's cutoff: its own, else the global one."""
        return self.passed_globally(field, tenant_path) | self.passed_own(field, tenant_path)

    def archive_params(self) -> dict[str, list]:
        """Each overridden tenant and its cutoff, as arrays for the archive's SQL: a tenant that
        keeps its data for good is kept from the beginning of time."""
        ids, cutoffs = [], []
        for cutoff in self.tenants:
            for tenant_id in cutoff.tenant_ids:
                ids.append(tenant_id)
                cutoffs.append("-infinity" if cutoff.before is None else cutoff.before.isoformat())
        return {"tenant_ids": ids, "tenant_cutoffs": cutoffs}


def tenants_with_own_retention() -> bool:
    """Whether any tenant keeps its data for a time of its own that purges something."""
    return Tenant.objects.filter(retention_days__gt=0).exists()


def retention_cutoffs(*, before: datetime | None, now: datetime) -> RetentionCutoffs:
    """The global cutoff `before` with every tenant's own, read now: one query."""
    by_days: dict[int, list[int]] = defaultdict(list)
    overriding = Tenant.objects.filter(retention_days__isnull=False).order_by("id")
    for days, tenant_id in overriding.values_list("retention_days", "id"):
        by_days[days or 0].append(tenant_id)
    tenants = tuple(
        TenantCutoff(before=retention_cutoff(days=days, now=now), tenant_ids=tuple(ids))
        for days, ids in sorted(by_days.items())
    )
    return RetentionCutoffs(before=before, tenants=tenants)
