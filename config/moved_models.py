"""Migrations for models that moved to another app and kept their tables.

A model that moves app keeps its table (`db_table`), so only Django's state changes. Its content
type moves with it, so that the permissions granted on it, and the admin's history of it, follow.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def content_types_moved(*, from_app: str, to_app: str, models: list[str]) -> migrations.RunPython:
    """An operation renaming the content types of `models` from `from_app` to `to_app`."""

    def forwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        _rename(apps, from_app, to_app, models)

    def backwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        _rename(apps, to_app, from_app, models)

    return migrations.RunPython(forwards, backwards)


def _rename(apps: StateApps, old: str, new: str, models: list[str]) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in models:
        if not content_type.objects.filter(app_label=new, model=model).exists():
            content_type.objects.filter(app_label=old, model=model).update(app_label=new)
