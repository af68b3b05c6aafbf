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


def test_login_defaults_follow_the_contract():
    from flashsale.settings import base

    assert (base.RATE_LIMIT_LOGIN_IP, base.RATE_LIMIT_LOGIN_USER) == ("60/m", "5/m")


def test_login_is_limited_per_username_tried_in_any_case(client, make_user, settings):
    """A shared address (an office, a carrier) keeps logging in; one account's guesser does not."""
    settings.RATE_LIMIT_LOGIN_IP = None
    settings.RATE_LIMIT_LOGIN_USER = "2/m"
    make_user("erin", password=PASSWORD)
    make_user("finn", password=PASSWORD)
    tries = [client.post("/accounts/login/", {"username": name, "password": "guess"}) for name in ("erin", "Erin")]
    blocked = client.post("/accounts/login/", {"username": "ERIN", "password": PASSWORD})
    assert [t.status_code for t in tries] == [200, 200]
    assert blocked.status_code == 429
    html = blocked.content.decode()
    seconds = int(blocked["Retry-After"])
    assert f"Please wait {seconds} second" in html
    assert "Please enter a correct username and password" not in html  # never both at once
    assert 'value="ERIN"' in html  # the username stays typed
    assert client.post("/accounts/login/", {"username": "finn", "password": PASSWORD}).status_code == 302


def test_a_wrong_password_alone_shows_no_limit_message(client, make_user):
    make_user("gail", password=PASSWORD)
    html = client.post("/accounts/login/", {"username": "gail", "password": "nope"}).content.decode()
    assert "Please enter a correct username and password" in html and "Too many" not in html


def test_login_limits_off_with_zero(client, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = None
    settings.RATE_LIMIT_LOGIN_USER = None  # what env_rate makes of "0" and "off"
    make_user("hugo", password=PASSWORD)
    codes = {client.post("/accounts/login/", {"username": "hugo", "password": "x"}).status_code for _ in range(8)}
    assert codes == {200}


def test_token_login_is_limited_per_username_too(client_for, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = None
    settings.RATE_LIMIT_LOGIN_USER = "1/m"
    make_user("ivy", password=PASSWORD)
    first = client_for(None).post("/api/auth/token/", {"username": "ivy", "password": "x"}, format="json")
    second = client_for(None).post("/api/auth/token/", {"username": "IVY", "password": PASSWORD}, format="json")
    assert first.status_code == 400
    assert second.status_code == 429 and second.json()["code"] == "rate_limited"
    assert f"Please wait {second['Retry-After']} second" in second.json()["detail"]


def test_login_matches_usernames_without_regard_to_case(client, client_for, make_user):
    make_user("Jules", password=PASSWORD)
    assert client.post("/accounts/login/", {"username": "jULES", "password": PASSWORD}).status_code == 302
    token = client_for(None).post("/api/auth/token/", {"username": "JULES", "password": PASSWORD}, format="json")
    assert token.status_code == 200 and token.json()["token"]


def test_admin_login_matches_case_and_its_limit_page_says_how_long(client, make_user, settings):
    make_user("Kit", staff=True, password=PASSWORD)
    assert client.post("/admin/login/", {"username": "kit", "password": PASSWORD}).status_code == 302
    client.logout()
    settings.RATE_LIMIT_LOGIN_USER = "1/m"
    client.post("/admin/login/", {"username": "kit", "password": "x"})
    blocked = client.post("/admin/login/", {"username": "kit", "password": PASSWORD})
    assert blocked.status_code == 429
    assert f"Please wait {blocked['Retry-After']} second" in blocked.content.decode()


def test_signup_puts_password_rule_errors_under_the_password_and_promises_no_receipts(client):
    page = client.get("/accounts/signup/").content.decode()
    assert "receipt" not in page.lower()
    response = client.post("/accounts/signup/", {"username": "lena", "password1": "123", "password2": "123"})
    html = response.content.decode()
    assert response.status_code == 400
    password1_field = html.split('id="id_password1"')[1].split('<div class="field">')[0]
    assert "This password is too short" in password1_field
    password2_field = html.split('id="id_password2"')[1]
    assert "This password is too short" not in password2_field


def test_signup_tries_never_spend_an_existing_shoppers_login_tries(client, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = None
    settings.RATE_LIMIT_LOGIN_USER = "1/m"
    make_user("mona", password=PASSWORD)
    for _ in range(3):  # someone keeps trying to sign up as "Mona"
        assert client.post("/accounts/signup/", {"username": "Mona", "password1": "x", "password2": "x"}).status_code == 400
    assert client.post("/accounts/login/", {"username": "mona", "password": PASSWORD}).status_code == 302
