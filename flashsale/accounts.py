"""Shopper accounts on Django's auth views: login, signup, POST logout.

`urlpatterns` here is included at /accounts/. Logins (the shop's, the admin's and the API's
token) are rate limited per address and per username tried (RATE_LIMIT_LOGIN_IP,
RATE_LIMIT_LOGIN_USER), and match usernames without regard to case, as signup keeps them
unique without regard to case. `staff_required` guards staff pages: anonymous visitors get
the login page, signed-in shoppers a 403, never data.
"""

import functools

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from flashsale.errors import RateLimited
from flashsale.ratelimits import enforce_login_limits, enforce_signup_limit


def staff_required(view):
    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Staff only.")
        return view(request, *args, **kwargs)

    return guarded


def canonical_username(typed: str) -> str:
    """The stored spelling of a username typed in any case (the typed one if none matches)."""
    typed = (typed or "").strip()
    if not typed:
        return typed
    matches = list(get_user_model().objects.filter(username__iexact=typed).values_list("username", flat=True)[:2])
    if typed in matches or len(matches) != 1:
        return typed  # an exact match wins; two old accounts differing in case stay exact-only
    return matches[0]


class CaseInsensitiveLogin:
    """Mixin for Django's login forms: resolve the username's case before authenticating."""

    def clean(self):
        if self.cleaned_data.get("username"):
            self.cleaned_data["username"] = canonical_username(self.cleaned_data["username"])
        return super().clean()


class LoginForm(CaseInsensitiveLogin, AuthenticationForm):
    pass


class AdminLoginForm(CaseInsensitiveLogin, AdminAuthenticationForm):
    pass


def rate_limited_page(request, exc: RateLimited, *, template: str = "429.html", context: dict | None = None):
    """The shop's 429 page (or a form re-rendered as 429): the wait in words and in Retry-After."""
    response = render(request, template, {"limit_message": exc.detail, **(context or {})}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def login_rate_limited(view):
    """Count a login view's POSTs against the login limits (used on the admin's login)."""

    @functools.wraps(view)
    def limited(request, *args, **kwargs):
        if request.method == "POST":
            try:
                enforce_login_limits(request, username=request.POST.get("username", ""))
            except RateLimited as exc:
                return rate_limited_page(request, exc)
        return view(request, *args, **kwargs)

    return limited


def _limited_form(request, template: str, form, exc: RateLimited):
    """`form` (unbound: the password typed is never checked while limited, so a wrong
    password and the limit are never reported together) with only the limiter's message."""
    return rate_limited_page(request, exc, template=template, context={"form": form, "next": _next_url(request)})


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        try:
            enforce_login_limits(request, username=request.POST.get("username", ""))
        except RateLimited as exc:
            form = self.authentication_form(request, initial={"username": request.POST.get("username", "")})
            return _limited_form(request, self.template_name, form, exc)
        return super().post(request, *args, **kwargs)


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def validate_password_for_user(self, user, password_field_name="password1"):
        # Django files the password rules' errors under the confirmation field; they are
        # about the password itself, so they belong under it.
        super().validate_password_for_user(user, password_field_name="password1")


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
        try:
            enforce_signup_limit(request)
        except RateLimited as exc:
            form = SignupForm(initial={"username": request.POST.get("username", "")})
            return _limited_form(request, "accounts/signup.html", form, exc)
        form = SignupForm(request.POST)
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
