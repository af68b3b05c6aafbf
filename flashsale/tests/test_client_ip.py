"""TRUSTED_PROXIES: X-Forwarded-For is believed exactly as far as our own proxies wrote it."""

import pytest
from django.test import RequestFactory

from flashsale.client_ip import client_ip


def _request(remote="10.9.9.9", forwarded=None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.2.3.4", "10.9.9.9"),  # default: the header is ignored entirely
        (0, None, "10.9.9.9"),
        (1, "203.0.113.7", "203.0.113.7"),  # nginx appended the real client
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # a spoofed left-most entry is ignored
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "10.9.9.9"),  # fewer hops than proxies: not written by our proxies
        (1, "not-an-ip", "10.9.9.9"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip(settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXIES = proxies
    assert client_ip(_request(forwarded=forwarded)) == expected
