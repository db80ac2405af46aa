"""Error bodies outside DRF (unknown URLs, CSRF failures, Django's debug pages) on API paths are
turned into problem details too, so a client never has to parse HTML; and a database or broker
that does not answer is 503 with Retry-After wherever it is noticed."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from clinic.api.problems import (
    PROBLEM_CONTENT_TYPE,
    _json_problem,
    service_unavailable,
    unavailable_part,
)

API_PREFIXES = ("/api/", "/healthz/")
NO_STORE_PREFIXES = ("/api/",)
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "X-Request-ID")


class ProblemDetailsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith(API_PREFIXES)
            and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            problem = _json_problem(response.status_code)
            for header in KEPT_HEADERS:
                if header in response:
                    problem[header] = response[header]
            return problem
        return response


class ServiceUnavailableMiddleware:
    """A view outside DRF (the back office, its login) whose database or broker does not answer
    answers 503 problem+json with Retry-After, not a 500. DRF's views answer so in their
    exception handler; an outage inside another middleware reaches `handler500`, which does the
    same."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        part = unavailable_part(exception)
        return service_unavailable(part) if part is not None else None


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every API response: nearly all of them carry patient data
    (records, exports, FHIR, the calendar feed, even an error can name a patient's field), and
    no browser, proxy or shared device may keep a copy (HIPAA 164.312(a)(1), OWASP ASVS 8.2.1).
    Listing which do not would be the one list someone forgets to update."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(NO_STORE_PREFIXES):
            response["Cache-Control"] = "no-store"
        return response
