"""Device rules for a SkinPen treatment: pure functions of plain values.

Sources (../shared/domain.md): needle depth 0-2.5 mm in 0.25 mm steps; a treated area needs a
depth above 0; above 1.5 mm safety and effectiveness have not been evaluated (labelling
precaution), so it needs a recorded reason; no treatment inside the orbital rim (there is no
such area to choose). The cartridge is single use and lot-tracked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import TextChoices

from scheduling.rules import Indication

AREAS = ("forehead", "temples", "cheeks", "nose", "perioral", "chin", "jawline", "neck")
DEPTH_STEP = Decimal("0.25")
MIN_DEPTH = Decimal("0.25")
MAX_DEPTH = Decimal("2.50")
EVALUATED_MAX_DEPTH = Decimal("1.50")


# Free-text limits of a treatment record, its amendments and aftercare steps.
NOTES_MAX_LENGTH = 5000
# Clocks differ a little between a tablet and the server; a minute is not "the future".
CLOCK_SKEW = timedelta(minutes=1)
CONSENT_TITLE_MAX_LENGTH = 200
CONSENT_BODY_MAX_LENGTH = 100_000
SIGNATURE_NAME_MAX_LENGTH = 200
# A consent form covers some of the series' indications (none listed: every one).
CONSENT_INDICATIONS = tuple(Indication.values)
REASON_MAX_LENGTH = 1000  # a depth override's or an amendment's
RECALL_REASON_MAX_LENGTH = 2000
MAX_LOT_QUANTITY = 100_000
MAX_AFTERCARE_DAY_OFFSET = 365
AFTERCARE_PRODUCT_MAX_LENGTH = 100
AFTERCARE_INSTRUCTION_MAX_LENGTH = 500


class LotStatus(TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    EXHAUSTED = "exhausted", "Exhausted"
    RECALLED = "recalled", "Recalled"
    # Held by an open recall notice of the recall watcher.
    QUARANTINED = "quarantined", "Quarantined"


def depth_error(depth: Decimal) -> str | None:
    """Why a depth is not a SkinPen setting, or None."""
    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        return f"Depth must be between {MIN_DEPTH} and {MAX_DEPTH} mm."
    if depth % DEPTH_STEP != 0:
        return f"Depth must be a multiple of {DEPTH_STEP} mm."
    return None


def depths_needing_override(depths: Iterable[Decimal]) -> list[Decimal]:
    return [depth for depth in depths if depth > EVALUATED_MAX_DEPTH]


def lot_status(
    *,
    expires_on: date,
    quantity_received: int,
    quantity_used: int,
    recalled: bool,
    today: date,
    quarantined: bool = False,
) -> LotStatus:
    """One status, by precedence: a recall outranks everything, then a quarantine (an open
    recall notice holds the lot), then stock, then expiry."""
    if recalled:
        return LotStatus.RECALLED
    if quarantined:
        return LotStatus.QUARANTINED
    if quantity_used >= quantity_received:
        return LotStatus.EXHAUSTED
    if expires_on < today:
        return LotStatus.EXPIRED
    return LotStatus.ACTIVE


def scan_mismatches(
    *, lot_gtin: str, lot_expires_on: date, scanned_gtin: str, scanned_expires_on: date
) -> list[str]:
    """What a scanned cartridge's UDI says differently from the lot of the same lot number.

    A lot received without a GTIN matches on its lot number alone. GTINs compare as GTIN-14
    (GS1 pads shorter GTINs with leading zeros)."""
    differences = []
    if lot_gtin and lot_gtin.zfill(14) != scanned_gtin.zfill(14):
        differences.append("gtin")
    if lot_expires_on != scanned_expires_on:
        differences.append("expires_on")
    return differences


# What separates the items of a recall's `code_info` ("Lot Numbers: 2401, 2402; UDI-DI ...").
# Hyphens, dots and underscores stay: they are part of lot numbers (SP-2401, 24.01).
_CODE_INFO_SEPARATORS = re.compile(r"[\s,;:#()\[\]{}<>\"'|=+&*!?]+")
_EDGE_PUNCTUATION = ".-_"


def code_info_tokens(code_info: str) -> set[str]:
    """The whole tokens of a recall's `code_info`, upper-cased: the lot numbers it can name.

    A slash joins list items ("2401/2402") as often as it is part of a lot number, so both the
    slashed token and its parts count."""
    tokens: set[str] = set()
    for raw in _CODE_INFO_SEPARATORS.split(code_info.upper()):
        token = raw.strip(_EDGE_PUNCTUATION)
        if not token:
            continue
        tokens.add(token)
        if "/" in token:
            tokens.update(part.strip(_EDGE_PUNCTUATION) for part in token.split("/") if part)
    tokens.discard("")
    return tokens


def lot_named_in(lot_number: str, code_info: str) -> bool:
    """Whether a recall's `code_info` names the lot as a whole token (case does not matter)."""
    return lot_number.strip().upper() in code_info_tokens(code_info)


# The clinic's aftercare template starts as this, from domain.md's typical Skinfuse post-care;
# a clinic edits it to its own protocol. Product names are only those domain.md names.
DEFAULT_AFTERCARE_STEPS: tuple[dict[str, object], ...] = (
    {
        "day_offset": 0,
        "product": "Skinfuse Lift HG",
        "instruction": "Reapply the hydrogel as needed for up to 24 hours after treatment.",
    },
    {
        "day_offset": 0,
        "product": "Skinfuse Rescue",
        "instruction": "Apply to calm the skin during the first 24 to 48 hours.",
    },
    {
        "day_offset": 0,
        "product": "",
        "instruction": "No make-up or sunscreen for the rest of the treatment day.",
    },
    {
        "day_offset": 0,
        "product": "",
        "instruction": "Limit sun exposure and avoid strenuous exercise or sweating for 72 hours.",
    },
    {
        "day_offset": 1,
        "product": "",
        "instruction": "Sunscreen again from 24 hours after treatment.",
    },
    {
        "day_offset": 1,
        "product": "",
        "instruction": "No retinoids or acids on days 1 to 6.",
    },
)


# --- Consent -----------------------------------------------------------------------------------


def consent_sha256(body: str) -> str:
    """What a signature is pinned to: the hex SHA-256 of the form's UTF-8 body."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def form_covers(form_indications: Iterable[str], indication: str) -> bool:
    """A form with no indications listed covers every indication."""
    listed = list(form_indications)
    return not listed or indication in listed
