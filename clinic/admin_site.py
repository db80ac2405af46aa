"""The back office's site: Django's admin behind the same login as the API.

The login form goes through `clinic.services.check_login` (one lockout, progressive delay and
audit shared with `POST /api/v1/auth/token/`) and requires the current TOTP code of a confirmed
device (django-otp's OTPAdminSite: no verified device, no back office). A successful login sets
an HTTP-only device cookie, so the failures of others on the same username do not delay the
next login from this browser. A throttled login answers 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.admin import OTPAdminSite

from clinic import auth, services
from clinic.errors import AuthenticationFailed, SecondFactorFailed, Throttled

BACK_OFFICE_OTP_PROBLEMS = {
    "otp_required": "Enter the current code of your authenticator app.",
    "otp_invalid": "Invalid authentication code.",
    "otp_not_enrolled": "The back office requires two-factor authentication: ask for your "
    "authenticator to be enrolled (manage.py enroll_totp).",
}


class BackOfficeLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        required=False,
        max_length=16,
        label="Authentication code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        request = self.request
        if request is None:  # the admin's login view always passes it
            raise self.get_invalid_login_error()
        try:
            checked = services.check_login(
                username=username,
                password=password,
                otp=self.cleaned_data.get("otp_token") or None,
                client_address=auth.client_address(request),
                device_token=request.COOKIES.get(auth.DEVICE_COOKIE),
                back_office=True,
            )
        except Throttled as exc:
            retry_after = exc.headers["Retry-After"]
            request.login_retry_after = retry_after  # type: ignore[attr-defined]
            raise ValidationError(
                f"Too many failed logins. Try again in {retry_after} seconds.", code="throttled"
            ) from exc
        except SecondFactorFailed as exc:
            raise ValidationError(BACK_OFFICE_OTP_PROBLEMS[exc.factor], code=exc.factor) from exc
        except AuthenticationFailed as exc:
            raise self.get_invalid_login_error() from exc
        user = checked.user
        # django_otp.login() (on user_logged_in) keeps the verified device in the session.
        user.otp_device = checked.otp_device  # type: ignore[attr-defined]
        self.user_cache = user
        request.issued_device_token = checked.device_token  # type: ignore[attr-defined]
        return self.cleaned_data


class ClinicAdminSite(OTPAdminSite):
    site_header = "SkinPen clinic back office"
    site_title = "SkinPen clinic"
    login_form = BackOfficeLoginForm

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response: HttpResponse = super().login(request, extra_context)
        retry_after = getattr(request, "login_retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = retry_after
        device_token = getattr(request, "issued_device_token", None)
        if device_token is not None:
            response.set_cookie(
                auth.DEVICE_COOKIE,
                device_token,
                max_age=settings.DEVICE_TOKEN_MAX_AGE_DAYS * 86400,
                path=reverse(f"{self.name}:index"),
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Strict",
            )
        return response
