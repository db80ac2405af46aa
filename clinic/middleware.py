"""Error bodies outside DRF (unknown URLs, CSRF failures, Django's debug pages) on API paths are
turned into problem details too, so a client never has to parse HTML."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from clinic.api.problems import PROBLEM_CONTENT_TYPE, _json_problem

API_PREFIXES = ("/api/", "/healthz/")
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
