"""Django's CommonMiddleware, minus the trailing-slash redirect under /api/.

APPEND_SLASH answers `POST /api/orders` with a `301` to `/api/orders/`, and a client that
follows it turns the purchase into a GET. Under /api/ a path without its slash is simply
not found: `404 not_found` JSON (flashsale.error_views), never a redirect. The shop's pages
keep the redirect, which browsers follow harmlessly.
"""

from django.middleware.common import CommonMiddleware


class CommonMiddlewareWithoutApiRedirects(CommonMiddleware):
    def should_redirect_with_slash(self, request):
        if request.path_info.startswith("/api/"):
            return False
        return super().should_redirect_with_slash(request)
