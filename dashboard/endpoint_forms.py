"""The dashboard's endpoint form: the add-endpoint page and an endpoint's Settings tab.

The URL, headers and the other fields are checked by the model's own validators (the ones the
API's serializer runs too: subscriptions.validators), so the dashboard accepts exactly what the
API accepts. Custom headers are edited as `Name: value` lines; values come back masked, and a
masked value left unchanged keeps the stored one (subscriptions.headers).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from config.ids import whole_number
from subscriptions.headers import headers_with_kept_values, masked_headers
from subscriptions.models import TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE, Endpoint, EventType
from subscriptions.validators import MAX_HEADERS, MAX_URL_LENGTH

HEADER_LINES_HELP = (
    "One header a line, as Name: value. Values are shown masked; leave a masked value as it is "
    "to keep it."
)


def subscribable_event_types(endpoint: Endpoint | None = None) -> QuerySet[EventType]:
    """The catalog a tenant picks from: not archived, not Hookline's own test and challenge
    types; plus, when editing, any archived type the endpoint still has (so saving keeps it)."""
    shown = Q(archived=False)
    if endpoint is not None and endpoint.pk:
        shown |= Q(endpoints=endpoint)
    kinds = EventType.objects.filter(shown).exclude(
        name__in=[TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE]
    )
    return kinds.distinct().order_by("name")


class EventTypeChoices(forms.ModelMultipleChoiceField):
    """Event types picked by id; anything but an id the table could hold is refused unread."""

    def _check_values(self, value: Any) -> QuerySet[EventType]:
        for pk in value:
            if whole_number(pk) is None:
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)  # type: ignore[misc]  # Django's, unstubbed


class EndpointForm(forms.ModelForm):
    url = forms.CharField(
        label="URL", max_length=MAX_URL_LENGTH, help_text="Where Hookline POSTs your events."
    )
    headers = forms.CharField(
        label="Custom headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=HEADER_LINES_HELP,
    )
    event_types = EventTypeChoices(
        queryset=EventType.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Endpoint
        fields = ["url", "description", "event_types", "headers", "rate_limit", "payload_format"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event_types"].queryset = subscribable_event_types(self.instance)  # type: ignore[attr-defined]
        self.fields["rate_limit"].widget.attrs.update({"min": 1, "placeholder": "No limit"})
        stored = self.instance.headers if isinstance(self.instance.headers, dict) else {}
        self.initial["headers"] = "\n".join(
            f"{name}: {value}" for name, value in masked_headers(stored).items()
        )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url.startswith(("https://", "http://")):  # as the API's serializer
            raise ValidationError("URL must start with https://.")
        return url

    def clean_headers(self) -> dict[str, str]:
        given = header_lines(self.cleaned_data.get("headers", ""))
        stored = self.instance.headers if isinstance(self.instance.headers, dict) else {}
        kept = headers_with_kept_values(given=given, stored=stored)
        assert isinstance(kept, dict)
        return kept


def header_lines(text: str) -> dict[str, str]:
    """`Name: value` lines as a dict; raises ValidationError naming the line that is not one."""
    headers: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_HEADERS:
        raise ValidationError(f"At most {MAX_HEADERS} custom headers are allowed.")
    for number, line in enumerate(lines, start=1):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValidationError(f"Line {number} is not Name: value.")
        if name.strip().lower() in {known.lower() for known in headers}:
            raise ValidationError(f"Header {name.strip()!r} is given twice.")
        headers[name.strip()] = value.strip()
    return headers
