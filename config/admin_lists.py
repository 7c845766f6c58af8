"""What the admin's long lists share: rows and filters that render cheaply.

Django renders each row's action checkbox through the form widget templates, which costs more
than the rest of the row; a list of a hundred deliveries spent most of its time there. Its related
filters list every row of the related table: thousands of endpoints cost more than the list.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db.models import Field, Model
from django.db.models.fields.related import RelatedField
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from config.ids import whole_number


class QuickCheckboxMixin:
    """The action checkbox, as Django's widget renders it, written directly."""

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> SafeString:
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(_("Select this object for an action - {}"), str(obj)),
        )


class FewChoicesRelatedFilter(admin.RelatedFieldListFilter):
    """A related filter that lists its choices while there are at most CHOICES_LIMIT. Past that
    it lists the chosen one alone, and a link to the related objects' own list, where each row
    links back to its filtered list here."""

    CHOICES_LIMIT = 100

    def field_choices(
        self, field: RelatedField, request: HttpRequest, model_admin: Any
    ) -> list[Any]:
        self.related_total: int | None = None
        related = _related_model(field)._default_manager
        if (
            len(related.values_list("pk", flat=True)[: self.CHOICES_LIMIT + 1])
            <= self.CHOICES_LIMIT
        ):
            return super().field_choices(field, request, model_admin)
        self.related_total = related.count()
        chosen = [pk for value in self.lookup_val or [] if (pk := whole_number(value)) is not None]
        return [(row.pk, str(row)) for row in related.filter(pk__in=chosen[:5])]

    def has_output(self) -> bool:
        return self.related_total is not None or super().has_output()

    def choices(self, changelist: ChangeList) -> Any:
        yield from super().choices(changelist)
        if self.related_total is None:
            return
        meta = _related_model(self.field)._meta
        try:
            related_list = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        except NoReverseMatch:
            return
        yield {
            "selected": False,
            "query_string": related_list,
            "display": _("Pick one of %(count)s %(name)s…")
            % {"count": f"{self.related_total:,}", "name": meta.verbose_name_plural},
        }


def _related_model(field: Field) -> type[Model]:
    relation = field.remote_field
    assert relation is not None, "a related filter is on a relation"
    return relation.model
