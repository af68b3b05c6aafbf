"""Under /api/ a path without its trailing slash is 404 JSON, never a redirect; pages keep theirs."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("method, path", [("post", "/api/orders"), ("get", "/api/products"),
                                          ("post", "/api/auth/token"), ("get", "/api/health")])
def test_an_api_path_without_its_slash_is_404_not_found_json(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
def test_a_page_without_its_slash_still_redirects(client):
    response = client.get("/accounts/login")
    assert response.status_code == 301 and response["Location"] == "/accounts/login/"
