"""`@verify_webhook` in a Django project (the `django` extra), with unittest and Django's test
client; skipped where Django is not installed."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import unittest

try:
    import django
    from django.conf import settings
except ImportError:  # the package without its extra
    django = None

from hookline_receiver import InvalidSecretError, secret_key, signature_header

if django is not None:
    if not settings.configured:
        settings.configure(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["testserver"],
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            SECRET_KEY="only-for-these-tests",
        )
        django.setup()
    from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
    from django.test import Client, RequestFactory
    from django.urls import path

    from hookline_receiver.django import verify_webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET = new_secret()
TENANT_SECRETS = {"acme": new_secret(), "globex": new_secret()}
BODY = b'{"type":"order.paid","timestamp":"2026-11-29T10:58:36.643Z","data":{"n":1}}'
CHALLENGE_BODY = json.dumps(
    {"type": "hookline.verification", "timestamp": "…", "data": {"challenge": "chl_42"}}
).encode()
calls: list = []
# Rejections are logged as warnings; here they would clutter unittest's output (assertLogs below
# still sees them).
logging.getLogger("hookline_receiver.django").addHandler(logging.NullHandler())


def signed(body: bytes = BODY, *, secret: str = SECRET, at: int | None = None) -> dict:
    stamp = int(time.time()) if at is None else at
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header([secret_key(secret)], "msg_1", stamp, body),
    }


if django is not None:

    @verify_webhook(secret=SECRET)
    def receive(request: HttpRequest) -> HttpResponse:
        calls.append(request.webhook)  # type: ignore[attr-defined]
        return JsonResponse({"id": request.webhook.id, "type": request.webhook.json()["type"]})  # type: ignore[attr-defined]

    def tenant_secret(request: HttpRequest) -> str:
        try:
            return TENANT_SECRETS[request.resolver_match.kwargs["tenant"]]  # type: ignore[union-attr]
        except KeyError:
            raise Http404("no such tenant") from None

    @verify_webhook(secret=tenant_secret)
    def receive_for_tenant(request: HttpRequest, tenant: str) -> HttpResponse:
        return JsonResponse({"tenant": tenant})

    urlpatterns = [
        path("hooks/", receive),
        path("hooks/<slug:tenant>/", receive_for_tenant),
    ]


@unittest.skipIf(
    django is None, "Django is not installed (pip install 'hookline-receiver[django]')"
)
class VerifyWebhook(unittest.TestCase):
    def setUp(self) -> None:
        calls.clear()
        self.client = Client(enforce_csrf_checks=True)

    def post(self, url: str, body: bytes, headers: dict):
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        return self.client.post(url, body, content_type="application/json", **extra)

    def test_an_authentic_message_reaches_the_view_without_a_csrf_token(self):
        response = self.post("/hooks/", BODY, signed())

        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content), {"id": "msg_1", "type": "order.paid"})

    def test_other_methods_are_405_with_allow_post(self):
        response = self.client.get("/hooks/")

        self.assertEqual(response.status_code, 405)
        self.assertEqual(response["Allow"], "POST")

    def test_missing_headers_are_400_and_a_bad_signature_or_stale_timestamp_401(self):
        headers = signed()
        del headers["webhook-signature"]
        missing = self.post("/hooks/", BODY, headers)
        tampered = self.post("/hooks/", BODY.replace(b'"n":1', b'"n":2'), signed())
        stale = self.post("/hooks/", BODY, signed(at=int(time.time()) - 400))

        self.assertEqual(missing.status_code, 400)
        self.assertIn("webhook-signature", json.loads(missing.content)["error"])
        self.assertEqual(tampered.status_code, 401)
        self.assertTrue(json.loads(tampered.content)["error"].startswith("no signature matches"))
        self.assertEqual(stale.status_code, 401)
        self.assertEqual(calls, [])

    def test_a_signed_challenge_is_echoed_without_calling_the_view(self):
        response = self.post("/hooks/", CHALLENGE_BODY, signed(CHALLENGE_BODY))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content), {"challenge": "chl_42"})
        self.assertEqual(calls, [])

    def test_a_challenge_with_a_wrong_signature_is_refused_not_echoed(self):
        forged = signed(CHALLENGE_BODY, secret=new_secret())
        response = self.post("/hooks/", CHALLENGE_BODY, forged)

        self.assertEqual(response.status_code, 401)
        self.assertNotIn(b"chl_42", response.content)

    def test_a_callable_picks_each_tenants_secret(self):
        acme = TENANT_SECRETS["acme"]

        ok = self.post("/hooks/acme/", BODY, signed(secret=acme))
        crossed = self.post("/hooks/globex/", BODY, signed(secret=acme))
        unknown = self.post("/hooks/initech/", BODY, signed(secret=acme))

        self.assertEqual((ok.status_code, json.loads(ok.content)), (200, {"tenant": "acme"}))
        self.assertEqual(crossed.status_code, 401)
        self.assertEqual(unknown.status_code, 404)

    def test_rejections_are_logged_without_the_secret_or_the_signature(self):
        headers = signed(b"{}")
        with self.assertLogs("hookline_receiver.django", logging.WARNING) as logs:
            self.post("/hooks/", BODY, headers)

        [logged] = logs.output
        self.assertIn("401", logged)
        self.assertIn("msg_1", logged)
        self.assertNotIn(SECRET[len("whsec_") :], logged)
        self.assertNotIn(headers["webhook-signature"][len("v1,") :], logged)

    def test_an_unusable_secret_is_a_loud_configuration_error(self):
        view = verify_webhook(secret="whsec_not base64")(receive)
        request = RequestFactory().post("/", BODY, content_type="application/json")
        request.META.update({"HTTP_" + n.upper().replace("-", "_"): v for n, v in signed().items()})
        with self.assertRaises(InvalidSecretError):
            view(request)

    def test_async_views_are_refused_at_decoration(self):
        async def receive_async(request):  # pragma: no cover - never called
            return JsonResponse({})

        with self.assertRaisesRegex(TypeError, "synchronous"):
            verify_webhook(secret=SECRET)(receive_async)


if __name__ == "__main__":
    unittest.main()
