"""Reading the regulator's device-recall feed (openFDA's shape), with httpx.

Only fetching and shape checks live here; what a recall does to the clinics' lots is
treatments.recalls. A feed that cannot be read raises FeedError, and the caller changes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

logger = logging.getLogger(__name__)

USER_AGENT = "skinpen-clinic-recall-watcher/1.1"
# openFDA answers 1 result unless asked for more, at most 1000 a page; further pages come by
# the `Link: <...>; rel="next"` header.
PAGE_LIMIT = 1000


class FeedError(Exception):
    """The feed did not answer, or answered something that is not a recall list."""


@dataclass(frozen=True)
class FeedRecall:
    source_id: str
    code_info: str
    reason: str
    product_description: str
    record: dict[str, Any]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def recalls_of(results: list[Any]) -> list[FeedRecall]:
    """The usable recalls of a feed's `results`; an entry without an id or code_info is skipped
    (and logged): it can name no lot."""
    recalls = []
    skipped = 0
    for entry in results:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        source_id = _text(entry.get("res_event_number")) or _text(entry.get("product_res_number"))
        code_info = _text(entry.get("code_info"))
        if not source_id or not code_info or len(source_id) > 64:
            skipped += 1
            continue
        recalls.append(
            FeedRecall(
                source_id=source_id,
                code_info=code_info,
                reason=_text(entry.get("reason_for_recall")),
                product_description=_text(entry.get("product_description")),
                record=entry,
            )
        )
    if skipped:
        logger.warning("recall feed: skipped %s entr(y/ies) without an id or code_info", skipped)
    return recalls


def _first_page(url: str) -> str:
    """The URL with `limit` set, unless it sets one."""
    parts = urlsplit(url)
    if any(key == "limit" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    # Appended to the query as written: re-encoding it could change an openFDA search.
    query = f"{parts.query}&limit={PAGE_LIMIT}" if parts.query else f"limit={PAGE_LIMIT}"
    return urlunsplit(parts._replace(query=query))


def _get(client: httpx.Client, url: str, *, attempts: int, backoff: float) -> httpx.Response:
    """GET with bounded retries on what may pass (no answer, timeout, 429, 5xx)."""
    for attempt in range(1, attempts + 1):
        try:
            response = client.get(url)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500 and response.status_code != 429:
                return response
            problem = f"HTTP {response.status_code}"
        logger.warning("recall feed attempt %s/%s failed: %s", attempt, attempts, problem)
        if attempt < attempts and backoff > 0:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise FeedError(f"no answer after {attempts} attempt(s): {problem}")


def _no_matches(response: httpx.Response) -> bool:
    """openFDA answers 404 {"error": {"code": "NOT_FOUND"}} to a search that matches nothing."""
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("error"), dict)
        and body["error"].get("code") == "NOT_FOUND"
    )


def fetch(
    url: str, *, timeout: float, attempts: int, backoff: float, max_pages: int
) -> list[FeedRecall]:
    """Every recall the feed lists (following its pages), or FeedError."""
    results: list[Any] = []
    next_url: str | None = _first_page(url)
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:
        for _page in range(max_pages):
            if next_url is None:
                break
            response = _get(client, next_url, attempts=attempts, backoff=backoff)
            if response.status_code == 404 and _no_matches(response):
                break
            if response.status_code != 200:
                raise FeedError(f"HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError as exc:
                raise FeedError("the answer is not JSON") from exc
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise FeedError("the answer has no `results` list")
            results.extend(body["results"])
            next_url = response.links.get("next", {}).get("url")
        else:
            if next_url is not None:
                logger.warning("recall feed: stopped after %s page(s)", max_pages)
    return recalls_of(results)
