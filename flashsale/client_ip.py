"""The client's address, trusting X-Forwarded-For only as far as TRUSTED_PROXIES says."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """Each trusted proxy appends the address it saw to X-Forwarded-For, so with N
    proxies the client is the N-th entry from the right. Entries further left were
    written by the client itself and are ignored (never the left-most)."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    proxies = settings.TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote  # fewer hops than proxies: the header is not what our proxies wrote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
