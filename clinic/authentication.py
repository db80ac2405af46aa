"""Bearer tokens (knox) with idle logoff (HIPAA 164.312(a)(2)(iii)).

knox's `expiry` column is the idle deadline: a token issued by `clinic.services.login` expires
TOKEN_IDLE_MINUTES after issue, and each use moves it to TOKEN_IDLE_MINUTES after that use, but
never past `created + TOKEN_TTL_HOURS` (the absolute lifetime, the token response's
`expires_at`). The move is one conditional UPDATE, written at most once a
TOKEN_REFRESH_INTERVAL_SECONDS, so a busy client costs one write a minute, not one a request.

Unlike knox's own TokenAuthentication, this does not load every token of the user on each
request to delete the expired ones: an expired token is deleted when presented, and the rest by
the hourly purge (`clinic.tasks.purge_idempotency_keys`).
"""

from __future__ import annotations

import binascii
from datetime import timedelta
from hmac import compare_digest
from typing import Any, cast

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from clinic.plain_sql import CompiledQuery

INVALID = "Invalid or expired token."


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != knox_settings.AUTH_HEADER_PREFIX.lower().encode():
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: `Bearer <token>`, the token without spaces."
            )
        try:
            token = auth[1].decode("ascii")
            digest = hash_token(token)
        except (UnicodeDecodeError, TypeError, ValueError, binascii.Error):
            raise exceptions.AuthenticationFailed(INVALID) from None
        now = timezone.now()
        for auth_token in tokens_with_key(token[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if not compare_digest(digest, auth_token.digest):
                continue
            if auth_token.expiry is not None and auth_token.expiry <= now:
                auth_token.delete()
                break
            if not auth_token.user.is_active:
                raise exceptions.AuthenticationFailed("User inactive or deleted.")
            self._slide(auth_token, now)
            return auth_token.user, auth_token
        raise exceptions.AuthenticationFailed(INVALID)

    def authenticate_header(self, request: Request) -> str:
        return str(knox_settings.AUTH_HEADER_PREFIX)

    @staticmethod
    def _slide(auth_token: AuthToken, now: Any) -> None:
        """Move the idle deadline to TOKEN_IDLE_MINUTES from now (never past the absolute end,
        never earlier than it is: a token issued without idle logoff keeps its expiry)."""
        if not settings.TOKEN_IDLE_MINUTES or auth_token.expiry is None:
            return
        deadline = min(
            now + timedelta(minutes=settings.TOKEN_IDLE_MINUTES),
            auth_token.created + knox_settings.TOKEN_TTL,
        )
        interval = timedelta(seconds=settings.TOKEN_REFRESH_INTERVAL_SECONDS)
        if deadline - auth_token.expiry < interval:
            return
        AuthToken.objects.filter(digest=auth_token.digest, expiry__lt=deadline).update(
            expiry=deadline
        )
        auth_token.expiry = deadline


# The token with its user and the user's clinic (most views need the clinic: its zone, its
# today; a join costs less than a second query), compiled once (clinic.plain_sql).
_TOKENS = CompiledQuery(
    lambda *, token_key: AuthToken.objects.filter(token_key=token_key).select_related(
        "user__clinic"
    )
)


def tokens_with_key(token_key: str) -> list[AuthToken]:
    """The tokens whose key (the token's first characters) is `token_key`, each with its user
    and the user's clinic."""
    return cast(list[AuthToken], _TOKENS.objects(token_key=token_key))


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """The schema's name for it stays knox's (drf-spectacular's knox extension matches only
    knox's own class)."""

    target_class = TokenAuthentication
    name = "knoxApiToken"

    def get_security_definition(self, auto_schema: Any) -> Any:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=str(knox_settings.AUTH_HEADER_PREFIX)
        )
