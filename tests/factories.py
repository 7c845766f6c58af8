from __future__ import annotations

import factory

from subscriptions.models import Endpoint, EventType, Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda tenant: tenant.slug.title())


class EventTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventType
        django_get_or_create = ("name",)

    name = "order.paid"


class EndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Endpoint
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    url = "http://127.0.0.1:9/hook"

    @factory.post_generation
    def event_types(self, create: bool, extracted: list[EventType] | None, **_: object) -> None:
        if create and extracted:
            self.event_types.set(extracted)
