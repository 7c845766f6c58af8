"""Hand-written SQL takes table and column names from the models, so that a model can move to
another app and keep its table through `db_table` without a statement going stale."""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps
from django.db import connection

from deliveries.models import Delivery
from deliveries.sql_names import sql_with_names

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "deliveries", "subscriptions", "webhooks")


def test_no_app_code_spells_a_table_name():
    tables = {
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in APPS
    }
    spelled = re.compile(r"\b(" + "|".join(sorted(tables)) + r")\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts  # a migration keeps the names of its time
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if spelled.search(line)
    ]
    assert found == []


def test_a_statement_follows_a_moved_table_and_a_renamed_column(monkeypatch):
    monkeypatch.setattr(Delivery._meta, "db_table", "engine_delivery")
    monkeypatch.setattr(Delivery._meta.get_field("endpoint"), "column", "target_id")
    render = sql_with_names.__wrapped__  # uncached: the names changed under this test alone

    sql = render("SELECT {Delivery.endpoint_id} FROM {Delivery.table} WHERE '{{}}' <> ''", Delivery)

    quote = connection.ops.quote_name
    assert sql == f"SELECT {quote('target_id')} FROM {quote('engine_delivery')} WHERE '{{}}' <> ''"
