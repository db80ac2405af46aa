"""OpenAPI: every operation documents its error responses (problem+json) and, on POST, the
Idempotency-Key header."""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from clinic.api.problems import PROBLEM_CONTENT_TYPE, ProblemSerializer

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes a retried POST safe: a replay with the same key and body returns the first "
        "response; the same key with another body answers 422 `idempotency_key_reused`; a "
        "replay while the first runs answers 409 `idempotency_in_progress`. Kept 24 h or more."
    ),
)

ERROR_DESCRIPTIONS = {
    400: "`invalid`: malformed body, wrong type or a value out of range",
    401: "`not_authenticated` / `authentication_failed`",
    403: "`permission_denied`: the user's role may not do this",
    404: "`not_found`: no such object in the user's clinic",
    405: "`method_not_allowed`",
    409: "a conflict; `code` names it",
    422: "a domain rule refused the request; `code` names it",
    429: "`throttled`",
    500: "`server_error`",
}


class ClinicAutoSchema(AutoSchema):
    def _is_public(self) -> bool:
        # get_auth() always lists the global bearer scheme; `{}` marks anonymous access allowed.
        return {} in self.get_auth()

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        # Keys are scoped to the user, so only signed-in POSTs take one.
        if self.method == "POST" and not self._is_public():
            params.append(IDEMPOTENCY_KEY)
        return params

    def _error_statuses(self) -> list[int]:
        statuses = [500]
        public = self._is_public()
        if not public:
            statuses += [401, 403]
        if "{" in self.path:
            statuses.append(404)
        if self.method in ("POST", "PUT", "PATCH") or self.get_filter_backends():
            statuses.append(400)
        if self.method == "POST" and not public:
            statuses += [409, 422]
        if self.path.endswith("/auth/token/"):
            statuses += [401, 429]
        return sorted(set(statuses))

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        if direction != "response":
            return responses
        for status in self._error_statuses():
            if str(status) in responses:
                continue
            response = self._get_response_for_code(
                ProblemSerializer, str(status), [PROBLEM_CONTENT_TYPE], direction
            )
            response["description"] = ERROR_DESCRIPTIONS.get(status, "error")
            responses[str(status)] = response
        return responses
