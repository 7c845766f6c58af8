from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ana():
    return get_user_model().objects.create_user("ana", password="right-password-1")


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_five_failed_sign_ins_lock_that_user_name_from_that_address(client, ana, path):
    for _ in range(5):
        assert client.post(path, {"username": "ana", "password": "wrong"}).status_code == 200

    locked = client.post(path, {"username": "ana", "password": "right-password-1"})

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_lock_on_one_user_name_leaves_others_alone(client, ana):
    get_user_model().objects.create_user("bob", password="bob-password-1")
    for _ in range(5):
        client.post("/accounts/login/", {"username": "ana", "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "bob", "password": "bob-password-1"})

    assert response.status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(client, ana):
    for _ in range(4):
        client.post("/accounts/login/", {"username": "ana", "password": "wrong"})
    assert (
        client.post(
            "/accounts/login/", {"username": "ana", "password": "right-password-1"}
        ).status_code
        == 302
    )
    client.logout()

    for _ in range(4):
        client.post("/accounts/login/", {"username": "ana", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "ana", "password": "right-password-1"})

    assert response.status_code == 302


# --- Look-alike user names: counted as authentication reads them ----------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_a_look_alike_spelling_of_a_locked_name_is_locked_too(client, ana, path):
    for _ in range(5):
        client.post(path, {"username": "ana", "password": "wrong"})

    # Fullwidth letters: the sign-in form's NFKC normalisation turns them into "ana".
    response = client.post(path, {"username": "ａｎａ", "password": "right-password-1"})

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_failures_under_look_alike_spellings_add_up(client, ana):
    for spelling in ("ana", "ａna", "ＡＮＡ", "Ana", " ana"):
        client.post("/accounts/login/", {"username": spelling, "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "ana", "password": "right-password-1"})

    assert response.status_code == 429


# --- Per address, across user names --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_many_user_names_tried_from_one_address_lock_that_address(client, ana, path):
    for n in range(20):
        assert client.post(path, {"username": f"guess-{n}", "password": "x"}).status_code == 200

    response = client.post(path, {"username": "ana", "password": "right-password-1"})

    assert response.status_code == 429
    assert "from your address" in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert "_auth_user_id" not in client.session


def test_an_address_lock_leaves_other_addresses_alone(client, ana):
    for n in range(20):
        client.post("/accounts/login/", {"username": f"guess-{n}", "password": "x"})

    response = client.post(
        "/accounts/login/",
        {"username": "ana", "password": "right-password-1"},
        REMOTE_ADDR="198.51.100.20",
    )

    assert response.status_code == 302


def test_signing_in_between_guesses_does_not_reset_the_address_count(client, ana):
    for n in range(19):
        client.post("/accounts/login/", {"username": f"guess-{n}", "password": "x"})
    ok = client.post("/accounts/login/", {"username": "ana", "password": "right-password-1"})
    assert ok.status_code == 302
    client.logout()
    client.post("/accounts/login/", {"username": "guess-19", "password": "x"})

    response = client.post("/accounts/login/", {"username": "ana", "password": "right-password-1"})

    assert response.status_code == 429


def test_without_a_trusted_proxy_header_a_forged_forwarded_for_changes_nothing(client, ana):
    for n in range(20):
        client.post(
            "/accounts/login/",
            {"username": f"guess-{n}", "password": "x"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )

    response = client.post(
        "/accounts/login/",
        {"username": "ana", "password": "right-password-1"},
        HTTP_X_FORWARDED_FOR="203.0.113.99",
    )

    assert response.status_code == 429


def test_behind_a_proxy_the_right_most_forwarded_address_is_the_one_counted(client, ana, settings):
    settings.WEBHOOKS_TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    for n in range(20):
        # The client writes what it likes on the left; the proxy appends the address it saw.
        client.post(
            "/accounts/login/",
            {"username": f"guess-{n}", "password": "x"},
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.7",
        )

    same_client = client.post(
        "/accounts/login/",
        {"username": "ana", "password": "right-password-1"},
        HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7",
    )
    other_client = client.post(
        "/accounts/login/",
        {"username": "ana", "password": "right-password-1"},
        HTTP_X_FORWARDED_FOR="203.0.113.8",
    )

    assert same_client.status_code == 429
    assert other_client.status_code == 302
