"""Migrations for models that moved to another app and kept their tables.

A model that moves app keeps its table (`db_table`), so only Django's state changes. Its content
type moves with it, so that the permissions granted on it, and the admin's history of it, follow.
"""

from __future__ import annotations

from django.db import migrations


def content_types_moved(*, from_app: str, to_app: str, models: list[str]) -> migrations.RunPython:
    """An operation renaming the content types of `models` from `from_app` to `to_app`."""

    def forwards(apps, schema_editor) -> None:  # noqa: ANN001
        _rename(apps, from_app, to_app, models)

    def backwards(apps, schema_editor) -> None:  # noqa: ANN001
        _rename(apps, to_app, from_app, models)

    return migrations.RunPython(forwards, backwards)


def _rename(apps, old: str, new: str, models: list[str]) -> None:  # noqa: ANN001
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in models:
        if not content_type.objects.filter(app_label=new, model=model).exists():
            content_type.objects.filter(app_label=old, model=model).update(app_label=new)
