"""Signup, login (rate limited per address), POST-only logout."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def test_signup_creates_the_account_logs_in_and_goes_back(client):
    response = client.post("/accounts/signup/", {
        "username": "newbie", "email": "", "password1": PASSWORD, "password2": PASSWORD, "next": "/orders/",
    })
    assert response.status_code == 302
    assert response["Location"] == "/orders/"
    assert get_user_model().objects.filter(username="newbie").exists()
    assert client.get("/orders/").status_code == 200  # signed in


def test_signup_refuses_weak_or_mismatched_passwords(client):
    response = client.post("/accounts/signup/", {"username": "x", "password1": "123", "password2": "124"})
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="x").exists()


def test_signup_ignores_offsite_next(client):
    response = client.post("/accounts/signup/", {
        "username": "traveller", "password1": PASSWORD, "password2": PASSWORD, "next": "https://evil.example/",
    })
    assert response["Location"] == "/"


def test_login_and_logout(client, make_user):
    make_user("carol", password=PASSWORD)
    response = client.post("/accounts/login/", {"username": "carol", "password": PASSWORD, "next": "/orders/"})
    assert response.status_code == 302 and response["Location"] == "/orders/"
    assert client.get("/accounts/logout/").status_code == 405  # logging out takes a POST (CSRF-protected)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/orders/").status_code == 302


def test_wrong_password_is_a_form_error(client, make_user):
    make_user("dave", password=PASSWORD)
    response = client.post("/accounts/login/", {"username": "dave", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_login_attempts_are_rate_limited_per_address(client, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = "3/m"
    make_user("erin", password=PASSWORD)
    codes = [client.post("/accounts/login/", {"username": "erin", "password": "guess"}).status_code for _ in range(3)]
    blocked = client.post("/accounts/login/", {"username": "erin", "password": PASSWORD})
    assert codes == [200, 200, 200]
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
    assert "Too many requests" in blocked.content.decode()
    assert client.get("/orders/").status_code == 302  # even the right password did not log in


def test_signup_is_rate_limited_too(client, settings):
    settings.RATE_LIMIT_LOGIN_IP = "1/m"
    first = client.post("/accounts/signup/", {"username": "a1", "password1": PASSWORD, "password2": PASSWORD})
    client.post("/accounts/logout/")
    second = client.post("/accounts/signup/", {"username": "a2", "password1": PASSWORD, "password2": PASSWORD})
    assert first.status_code == 302
    assert second.status_code == 429
    assert not get_user_model().objects.filter(username="a2").exists()


def test_login_form_needs_csrf(make_user):
    from django.test import Client

    make_user("fay", password=PASSWORD)
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/accounts/login/", {"username": "fay", "password": PASSWORD}).status_code == 403


def test_admin_login_is_rate_limited_too(client, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = "2/m"
    make_user("gus", staff=True, password=PASSWORD)
    for _ in range(2):
        assert client.post("/admin/login/", {"username": "gus", "password": "guess"}).status_code == 200
    blocked = client.post("/admin/login/", {"username": "gus", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
