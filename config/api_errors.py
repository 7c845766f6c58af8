"""One JSON shape for every API error: `{"code": …, "detail": "…", "fields": {…}}`.

`detail` is one sentence a person can act on; `fields` (for validation errors) maps each bad
field to its messages.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webhooks.errors import (
    EmitQuotaExceededError,
    EventError,
    InvalidOrderingKeyError,
    PayloadTooLargeError,
    UnknownEventTypeError,
)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _translate(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = _body(exc, response.data)
    return response


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, EmitQuotaExceededError):
        return exceptions.Throttled(wait=exc.retry_after, detail=str(exc))
    if isinstance(exc, PayloadTooLargeError):
        return PayloadTooLarge(str(exc))
    if isinstance(exc, UnknownEventTypeError):
        return exceptions.ValidationError({"event_type": [str(exc)]}, code="invalid")
    if isinstance(exc, InvalidOrderingKeyError):
        return exceptions.ValidationError({"ordering_key": [str(exc)]}, code="invalid")
    if isinstance(exc, EventError):
        return exceptions.ValidationError({"payload": [str(exc)]}, code="invalid")
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, Http404):
        return exceptions.NotFound("Not found.")
    return exc


def _body(exc: Exception, data: Any) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = data if isinstance(data, dict) else {"non_field_errors": data}
        return {"code": "invalid", "detail": _first_message(fields), "fields": fields}
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        return {"code": code, "detail": str(exc.detail)}
    return {"code": "error", "detail": str(data)}


def _first_message(fields: dict[str, Any]) -> str:
    for name, messages in fields.items():
        message = messages
        while isinstance(message, list | dict) and message:
            message = next(iter(message.values())) if isinstance(message, dict) else message[0]
        prefix = "" if name == "non_field_errors" else f"{name}: "
        return f"{prefix}{message}"
    return "Invalid input."


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_response(
    request: HttpRequest, *, status: int, code: str, detail: str, json: bool | None = None
) -> HttpResponse:
    """An error answered outside DRF: the API's JSON shape under /api/ (or when `json` is set),
    one line of plain text elsewhere."""
    if is_api(request) if json is None else json:
        return JsonResponse({"code": code, "detail": detail}, status=status)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")


# Django's own refusals, raised before any view runs. Their messages are not echoed: they can
# quote a Host header or a field of any length.
SUSPICIOUS = [
    (DisallowedHost, 400, "bad_request", "The Host header names a host not served here."),
    (RequestDataTooBig, 413, "payload_too_large", "The request body is too large."),
]


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 for what Django refuses before a view runs (a bad Host header, too many fields…):
    JSON under /api/, Django's page elsewhere."""
    if not is_api(request):
        return defaults.bad_request(request, exception)
    for kind, answer, code, detail in SUSPICIOUS:
        if isinstance(exception, kind):
            return error_response(request, status=answer, code=code, detail=detail)
    return error_response(
        request, status=400, code="bad_request", detail="The request is malformed."
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for URLs no view matched: JSON under /api/, Django's page elsewhere."""
    if is_api(request):
        return error_response(request, status=404, code="not_found", detail="Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        detail = "Internal error; it has been logged. Please retry later."
        return error_response(request, status=500, code="server_error", detail=detail)
    return defaults.server_error(request)
