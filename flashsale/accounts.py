"""Shopper accounts on Django's auth views: login (rate limited per address), signup, POST logout.

`urlpatterns` here is included at /accounts/. `staff_required` guards staff pages: anonymous
visitors get the login page, signed-in shoppers a 403, never data. The admin's login is
rate limited the same way (see flashsale/urls.py).
"""

import functools

from django import forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from flashsale.errors import RateLimited
from flashsale.ratelimits import enforce_login_limit


def staff_required(view):
    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Staff only.")
        return view(request, *args, **kwargs)

    return guarded


def login_rate_limited(view):
    """Count a login view's POSTs against RATE_LIMIT_LOGIN_IP (used on the admin's login)."""

    @functools.wraps(view)
    def limited(request, *args, **kwargs):
        if request.method == "POST":
            try:
                enforce_login_limit(request)
            except RateLimited as exc:
                response = HttpResponse(exc.detail, status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(exc.retry_after)
                return response
        return view(request, *args, **kwargs)

    return limited


def _rate_limited(request, template: str, form) -> object | None:
    """Render the form with the limiter's message (429) when this address tried too often."""
    try:
        enforce_login_limit(request)
    except RateLimited as exc:
        form.add_error(None, exc.detail)
        response = render(request, template, {"form": form, "next": request.POST.get("next", "")}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return None


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        limited = _rate_limited(request, self.template_name, self.get_form())
        return limited or super().post(request, *args, **kwargs)


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional, for order receipts.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@sensitive_post_parameters("password1", "password2")
@csrf_protect
def signup(request):
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    if request.method == "POST":
        form = SignupForm(request.POST)
        limited = _rate_limited(request, "accounts/signup.html", form)
        if limited:
            return limited
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_next_url(request))
        status = 400
    else:
        form, status = SignupForm(), 200
    return render(request, "accounts/signup.html", {"form": form, "next": _next_url(request)}, status=status)


urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("signup/", signup, name="signup"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
