"""Loading leased deliveries with their event, event type and endpoint, as model instances.

On PostgreSQL this is one hand-written query: compiling the equivalent `select_related` query
took about as long as running it, on every claim, and at light load every delivery is its own
claim. Each endpoint and event type is built once per load however many deliveries share it, so
an endpoint's secrets are decrypted once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names
from subscriptions.models import Endpoint, EventType
from webhooks.models import Event

# The order of the models' columns in a row of _load_sql().
_MODELS: tuple[type[Model], ...] = (Delivery, Event, EventType, Endpoint)
_ALIASES = ("d", "e", "t", "p")


def deliveries_load(delivery_ids: Sequence[int]) -> list[Delivery]:
    """These deliveries in the order of `delivery_ids` (the order their claim chose to send them
    in), their related rows attached."""
    if not delivery_ids:
        return []
    if connection.vendor != "postgresql":
        return _load_orm(delivery_ids)
    with connection.cursor() as cursor:
        cursor.execute(_load_sql(), [list(delivery_ids)])
        rows = cursor.fetchall()
    event_types: dict[int, EventType] = {}
    endpoints: dict[int, Endpoint] = {}
    deliveries = []
    for row in rows:
        delivery_row, event_row, type_row, endpoint_row = _split(row)
        delivery = _build(Delivery, delivery_row)
        delivery.event = _build(Event, event_row)
        delivery.event.event_type = _built_once(
            event_types, delivery.event.event_type_id, EventType, type_row
        )
        delivery.endpoint = _built_once(endpoints, delivery.endpoint_id, Endpoint, endpoint_row)
        deliveries.append(delivery)
    return _in_order_of(delivery_ids, deliveries)


def _load_orm(delivery_ids: Sequence[int]) -> list[Delivery]:
    deliveries = list(
        Delivery.objects.filter(id__in=list(delivery_ids)).select_related("event__event_type")
    )
    endpoints = Endpoint.objects.in_bulk({delivery.endpoint_id for delivery in deliveries})
    for delivery in deliveries:
        delivery.endpoint = endpoints[delivery.endpoint_id]
    return _in_order_of(delivery_ids, deliveries)


def _in_order_of(delivery_ids: Sequence[int], deliveries: list[Delivery]) -> list[Delivery]:
    position = {delivery_id: n for n, delivery_id in enumerate(delivery_ids)}
    return sorted(deliveries, key=lambda delivery: position[delivery.id])


@cache
def _load_sql() -> str:
    columns = ", ".join(
        f"{alias}.{connection.ops.quote_name(str(field.column))}"
        for model, alias in zip(_MODELS, _ALIASES, strict=True)
        for field in model._meta.concrete_fields
    )
    return f"SELECT {columns} " + sql_with_names(_LOAD_FROM_SQL, *_MODELS)


_LOAD_FROM_SQL = (
    "FROM {Delivery.table} d "
    "JOIN {Event.table} e ON e.{Event.id} = d.{Delivery.event_id} "
    "JOIN {EventType.table} t ON t.{EventType.id} = e.{Event.event_type_id} "
    "JOIN {Endpoint.table} p ON p.{Endpoint.id} = d.{Delivery.endpoint_id} "
    "WHERE d.{Delivery.id} = ANY(%s)"
)


def _split(row: tuple) -> list[tuple]:
    parts, start = [], 0
    for model in _MODELS:
        width = len(model._meta.concrete_fields)
        parts.append(row[start : start + width])
        start += width
    return parts


def _built_once(built: dict[int, Any], key: int, model: type[Model], values: tuple) -> Any:
    if key not in built:
        built[key] = _build(model, values)
    return built[key]


def _build(model: type[Model], values: tuple) -> Any:
    names, converters = _fields(model)
    converted = [
        value if convert is None or value is None else convert(value, None, connection)
        for value, convert in zip(values, converters, strict=True)
    ]
    return model.from_db(connection.alias, names, converted)


@cache
def _fields(model: type[Model]) -> tuple[list[str], list[Callable | None]]:
    fields = model._meta.concrete_fields
    return (
        [field.attname for field in fields],
        [getattr(field, "from_db_value", None) for field in fields],
    )
