"""OpenAPI: every operation documents its error responses (problem+json) and, on POST, the
Idempotency-Key header; operations are tagged by resource and each has a summary, so a
generated client reads well (one module per resource, `LoginRequest` and not
`TokenRequestRequest`)."""

import re
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from clinic.api.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from clinic.api.problems import PROBLEM_CONTENT_TYPE, ProblemSerializer

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type={"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN},
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
    503: "`service_unavailable`: the database or the broker is not answering; retry after "
    "`Retry-After` seconds",
}

# The codes an operation answers beyond the generic ones, by operation id, so a client knows
# what to handle (the problem body's extension members are documented on the Problem schema).
OPERATION_ERRORS = {
    "sessions_check_in_create": {
        400: "`invalid`: a day-of attestation answer is missing (`errors` names it) while the "
        "clinic's `day_of_attestation_required` is on",
        409: "`invalid_state`: the session is not booked, or its local day has not begun",
        422: "`patient_not_eligible` (`reasons`): an attestation answer is yes; the session "
        "stays booked",
    },
    "sessions_treatment_create": {
        400: "`invalid`: bad body, `performed_at` in the future or not on the session's local "
        "day, a depth off the SkinPen settings, an unknown warning code",
        409: "`invalid_state` (the session is not checked in), `session_already_recorded`, "
        "`tip_lot_exhausted`, `tip_already_used`",
        422: "`attestation_required`, `patient_not_eligible` (`reasons`), "
        "`interval_too_short`, `warnings_not_acknowledged` (`warnings`), `consent_required` "
        "(`consent_forms`), `depth_not_allowed`, `tip_lot_expired`, `tip_lot_recalled`, "
        "`tip_lot_quarantined`, `tip_lot_unknown`, `tip_lot_mismatch`",
    },
}

# Sub-resources under a parent's path that are resources of their own in a client.
SUBRESOURCE_TAGS = {
    "screenings": "screenings",
    "eligibility": "screenings",
    "treatment": "treatment",
    "aftercare": "aftercare",
}
ACTION_VERBS = {
    "list": "List",
    "create": "Create",
    "retrieve": "Get",
    "update": "Replace",
    "partial_update": "Update",
    "destroy": "Delete",
}
METHOD_ACTIONS = {
    "GET": "retrieve",
    "POST": "create",
    "PUT": "update",
    "PATCH": "partial_update",
    "DELETE": "destroy",
}
ONE_OF = {"series": "a series", "staff": "a staff member", "clinic": "the clinic's settings"}
# Where `<verb> <resource>` would not say it: by operation id (views may also pass summary=).
SUMMARIES = {
    "patients_archive_create": "Archive a patient",
    "patients_eligibility_retrieve": "A patient's eligibility on a date",
    "patients_screenings_list": "List a patient's screenings",
    "patients_screenings_create": "Record a patient's screening",
    "series_cancel_create": "Cancel a series and its sessions to come",
    "sessions_cancel_create": "Cancel a session",
    "sessions_check_in_create": "Check a patient in for a session",
    "sessions_no_show_create": "Mark a session no-show",
    "sessions_reschedule_create": "Move a booked session",
    "sessions_create": "Book a session",
    "sessions_treatment_retrieve": "Get a session's treatment record",
    "sessions_treatment_create": "Record a session's treatment",
    "sessions_treatment_amendments_list": "List a treatment record's amendments",
    "sessions_treatment_amendments_create": "Amend a treatment record",
    "sessions_aftercare_retrieve": "Get a session's aftercare plan",
    "tip_lots_create": "Receive a tip lot into stock",
    "tip_lots_recall_create": "Recall a tip lot and name the patients treated with it",
    "tip_lots_usage_list": "List the treatment records that used a tip lot",
    "healthz_retrieve": "Health of the database and the broker",
}


# Operations outside django-filter whose optional query parameters, sent empty, count as absent.
EMPTY_IS_ABSENT = {"export_tip_usage_csv"}


def _allow_empty(parameters: list[Any]) -> list[Any]:
    for parameter in parameters:
        if parameter.get("in") == "query" and not parameter.get("required"):
            parameter["allowEmptyValue"] = True
    return parameters


def keep_literal_dollar(endpoints: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """DRF derives a path from its route with Django's simplify_regex, which drops every `$`
    as an end anchor, also the literal one of FHIR's `Patient/{id}/$everything`: the schema
    then names a path the server does not have. Put back each `$` the route has literally."""
    fixed = []
    for path, path_regex, method, callback in endpoints:
        # `$` before a word is literal (an anchor ends the pattern): `$everything`, `\$everything`.
        for word in re.findall(r"\$(\w+)", path_regex):
            path = path.replace(f"/{word}", f"/${word}")
        fixed.append((path, path_regex, method, callback))
    return fixed


class ClinicAutoSchema(AutoSchema):
    def _literal_path(self) -> list[str]:
        """The path's words after /api/v1/, without parameters."""
        path = re.sub(r"^/api/v\d+/", "", self.path)
        return [part for part in path.strip("/").split("/") if part and "{" not in part]

    def get_tags(self) -> list[str]:
        """One tag per resource (the first word of the path, or a sub-resource's own)."""
        words = self._literal_path() or ["api"]
        for word in words[1:]:
            if word in SUBRESOURCE_TAGS:
                return [SUBRESOURCE_TAGS[word]]
        return [words[0]]

    def get_summary(self) -> str | None:
        """Every operation has one: SUMMARIES', else `<verb> <resource>` ("List patients")."""
        summary = SUMMARIES.get(self.get_operation_id())
        if summary:
            return summary
        action = getattr(self.view, "action", None)
        if action not in ACTION_VERBS:
            action = "list" if self._is_list_view() else METHOD_ACTIONS[self.method]
        resource = (self._literal_path() or ["api"])[0].replace("-", " ")
        if action != "list" and resource in ONE_OF:
            resource = ONE_OF[resource]
        elif action != "list":
            resource = resource.removesuffix("s")
            resource = f"{'an' if resource[0] in 'aeiou' else 'a'} {resource}"
        return f"{ACTION_VERBS[action]} {resource}"

    def _get_serializer_name(
        self, serializer: Any, direction: Any, bypass_extensions: bool = False
    ) -> str:
        # COMPONENT_SPLIT_REQUEST appends "Request" to request bodies; an input serializer
        # already says so in its name ("TokenRequest", "TreatmentInput"): say it once.
        name: str = super()._get_serializer_name(serializer, direction, bypass_extensions)
        for doubled in ("RequestRequest", "InputRequest"):
            if name.endswith(doubled):
                return name[: -len(doubled)] + "Request"
        return name

    def _is_public(self) -> bool:
        # get_auth() always lists the global bearer scheme; `{}` marks anonymous access allowed.
        return {} in self.get_auth()

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        # Keys are scoped to the user, so only signed-in POSTs take one.
        if self.method == "POST" and not self._is_public():
            params.append(IDEMPOTENCY_KEY)
        return params

    def _get_filter_parameters(self) -> list[Any]:
        # A filter sent empty (`?patient=`) filters nothing (django-filter's reading), which a
        # client may rely on: say so, or an empty value reads as a value the schema forbids.
        return _allow_empty(super()._get_filter_parameters())

    def _get_parameters(self) -> list[Any]:
        parameters: list[Any] = super()._get_parameters()
        if self.get_operation_id() in EMPTY_IS_ABSENT:
            _allow_empty(parameters)
        return parameters

    def _has_query_parameters(self) -> bool:
        return any(
            getattr(parameter, "location", None) == OpenApiParameter.QUERY
            for parameter in self.get_override_parameters()
        )

    def _error_statuses(self) -> list[int]:
        statuses = [500, 503]
        public = self._is_public()
        if not public:
            statuses += [401, 403]
        if "{" in self.path:
            statuses.append(404)
        # A body, a filter, or a page (`?page=` past the last one is 400 `invalid`).
        if (
            self.method in ("POST", "PUT", "PATCH")
            or self.get_filter_backends()
            or self._is_list_view()
            or self._has_query_parameters()
        ):
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
            response["description"] = OPERATION_ERRORS.get(self.get_operation_id(), {}).get(
                status, ERROR_DESCRIPTIONS.get(status, "error")
            )
            responses[str(status)] = response
        return responses


# --- Links: what a create answers is what the object's own operations take --------------------

# A path whose objects another collection creates.
LINK_ALIASES = {"/api/v1/fhir/Patient/": "/api/v1/patients/"}
_PARAM = re.compile(r"^\{(\w+)\}/")


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """OpenAPI links from each create (`POST <collection>/` answering 201 with an `id`) to every
    operation under `<collection>/{param}/`, the new object's id as `param` and the create's
    own path parameters passed on: a client (and schemathesis' state machine) can follow them."""
    paths: dict[str, Any] = result["paths"]
    creates = {
        path: operation
        for path, item in paths.items()
        if (operation := item.get("post")) and "201" in operation["responses"]
    }
    for target_path, item in paths.items():
        for collection, create in creates.items():
            for prefix in (collection, *[a for a, c in LINK_ALIASES.items() if c == collection]):
                match = (
                    _PARAM.match(target_path[len(prefix) :])
                    if target_path.startswith(prefix)
                    else None
                )
                if not match:
                    continue
                inherited = re.findall(r"\{(\w+)\}", collection)
                parameters = {name: f"$request.path.{name}" for name in inherited}
                parameters[match.group(1)] = "$response.body#/id"
                for method, operation in item.items():
                    if method not in ("get", "put", "patch", "post", "delete"):
                        continue
                    links = create["responses"]["201"].setdefault("links", {})
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": parameters,
                    }
    return result
