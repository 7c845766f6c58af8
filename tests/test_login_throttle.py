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
