"""Table and column names for hand-written SQL, read from the models' `_meta`.

Raw SQL never spells a table or column by hand: a model may move to another app and keep its table
through `db_table`, or a field its column through `db_column`, and every statement must follow. A
statement is a template in which `{Delivery.table}` stands for the quoted table of the model named
Delivery, and `{Delivery.next_attempt_at}` for the quoted column of a concrete field, named by its
attname (`endpoint_id`, not `endpoint`). Write `{{` and `}}` for a literal brace.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

from django.db import connection
from django.db.models import Model


@cache
def sql_with_names(template: str, *models: type[Model], **named: type[Model]) -> str:
    """`template` with the names of `models` filled in, each under its class name, and those of
    `named` under their keyword (for a model without a class name of its own, such as an
    automatic many-to-many table). Built once per template and models."""
    names = {model.__name__: _names(model) for model in models}
    names.update((key, _names(model)) for key, model in named.items())
    return template.format(**names)


def _names(model: type[Model]) -> SimpleNamespace:
    quote = connection.ops.quote_name
    columns = {f.attname: quote(str(f.column)) for f in model._meta.concrete_fields}
    if "table" in columns:
        raise ValueError(f"{model.__name__} has a field named `table`, which would hide its table")
    return SimpleNamespace(table=quote(model._meta.db_table), **columns)
