"""No patient data in logs: a filter on every handler of LOGGING that redacts it from each
record (message, arguments, traceback) before anything is written.

Two nets, because neither alone catches everything:

- the values themselves: every Patient loaded or created in this request or task leaves its
  names, email, phone and date of birth here (`remember`, from patients' post_init), and each
  occurrence in a record becomes `[patient]`. A name cannot be recognised by its shape, only by
  being known; an exception message such as "patient Jane Doe ..." is caught this way.
- shapes: query strings of URLs (`?[query]`), email addresses (`[email]`), phone numbers
  (`[phone]`), dates without a time, like a date of birth (`[date]`), and the values
  PostgreSQL quotes in an error's DETAIL (`Key (email)=(...)`, `Failing row contains (...)`).

Ids, hashes, signatures and timestamps are left alone, so a log line still says which object,
when, and an audit checkpoint logged as JSON stays verifiable.

The known values are reset at the start of each request (request_started) and each Celery
task (task_prerun), and capped, so a long-lived worker does not grow them.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

MAX_REMEMBERED = 5000
SHORTEST = 2  # one-letter names would redact every "a"

_remembered: ContextVar[dict[str, None] | None] = ContextVar("clinic_log_redaction", default=None)
_pattern_cache: dict[frozenset[str], re.Pattern[str]] = {}


def forget(**_kwargs: Any) -> None:
    """Start a new request's or task's set of known values."""
    _remembered.set({})


def remember(*values: Any) -> None:
    known = _remembered.get()
    if known is None:
        known = {}
        _remembered.set(known)
    for value in values:
        text = str(value).strip() if value is not None else ""
        if len(text) >= SHORTEST and text not in known:
            if len(known) >= MAX_REMEMBERED:
                known.pop(next(iter(known)))
            known[text] = None


def _known_pattern() -> re.Pattern[str] | None:
    known = _remembered.get()
    if not known:
        return None
    key = frozenset(known)
    pattern = _pattern_cache.get(key)
    if pattern is None:
        alternatives = "|".join(re.escape(v) for v in sorted(key, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        _pattern_cache.clear()  # one set at a time is current
        _pattern_cache[key] = pattern
    return pattern


_DETAIL = re.compile(
    r"(Key \((?:[^()]|\([^()]*\))*\)=\().*?(\)(?: already exists| is not present| conflicts|\.?$))",
    re.MULTILINE,
)
_FAILING_ROW = re.compile(r"Failing row contains \(.*?\)(?=\.?\s*$|\.?\n)", re.MULTILINE)
# A URL's query string (runserver's request lines, a client library's errors): `?search=` and
# friends carry what a user typed about a patient.
_QUERY = re.compile(r"((?:https?://[^\s/\"']+)?/[^\s?\"']*)\?[^\s\"']+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A date with no time after it (a date of birth; timestamps stay readable).
_DATE = re.compile(
    r"(?<![\w/+=.-])(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})(?![\w/+=-]|[T ]\d|:\d)"
)
# A phone number: international (+, then 7 to 15 digits) or in the usual groups ((202) 555-0143,
# 202-555-0143, 202.555.0143). Digits in groups of spaces only, or a bare run of digits, are
# counts, sizes and ids as often as phones, and left alone: the patient's own number is known
# by value anyway.
_PHONE = re.compile(
    r"(?<![\w/+=.-])"
    r"(?:\+\d[\d ().-]{5,}\d|\(\d{2,4}\) ?\d{3,4}[ .-]?\d{3,4}|\d{2,4}[.-]\d{3,4}[.-]\d{3,4})"
    r"(?!\.?[\w/+=-])"
)


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group())
    return "[phone]" if 7 <= digits <= 15 else match.group()


def redact(text: str) -> str:
    text = _QUERY.sub(r"\1?[query]", text)
    text = _DETAIL.sub(r"\1[redacted]\2", text)
    text = _FAILING_ROW.sub("Failing row contains ([redacted])", text)
    text = _EMAIL.sub("[email]", text)
    text = _DATE.sub("[date]", text)
    text = _PHONE.sub(_phone, text)
    known = _known_pattern()
    return known.sub("[patient]", text) if known is not None else text


class RedactPatientData(logging.Filter):
    """Attached to every handler (settings.LOGGING): rewrites the record in place, so whatever
    formats it afterwards sees only the redacted text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
