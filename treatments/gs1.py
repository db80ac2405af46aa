"""GS1 UDI barcodes of cartridge boxes, read with biip: a pure function of the scanned text.

A scanner sends one of three forms, all accepted:

- a GS1 element string, as a DataMatrix / GS1-128 / QR scan arrives: AIs run together,
  variable-length ones ended by FNC1, transmitted as GS (``\\x1d``); often with a leading
  symbology identifier (``]d2`` DataMatrix, ``]C1`` GS1-128, ``]Q3`` QR, ``]e0`` DataBar);
- the human-readable interpretation printed under the symbol, ``(01)...(17)...(10)...(21)...``;
- a GS1 Digital Link URI, ``https://<any host>/01/<gtin>/10/<lot>?17=<YYMMDD>&21=<serial>``.

A cartridge's UDI must carry its device identifier, GTIN (01, check digit verified), its expiry
(17, ``YYMMDD``; day ``00`` is the month's last day, as GS1 General Specifications 7.12 says)
and its lot (10); the serial (21) is optional. Anything else is refused with messages that name
what is missing or wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import biip
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message

AI_GTIN = "01"
AI_EXPIRY = "17"
AI_LOT = "10"
AI_SERIAL = "21"
REQUIRED = ((AI_GTIN, "GTIN"), (AI_EXPIRY, "expiry date"), (AI_LOT, "lot number"))
MAX_BARCODE_LENGTH = 512

# Only line ends and spaces around the scan are noise; GS (\x1d) is data, and str.strip()
# would eat it.
_EDGES = " \t\r\n"
_URI = re.compile(r"^https?://", re.IGNORECASE)
# Dates are checked here, so that a bad one is named as such rather than as biip's exception.
_CONFIG = biip.ParseConfig(gs1_element_strings_verify_date=False)


class BarcodeError(ValueError):
    """The scan is not a usable cartridge UDI; `messages` say why, one line each."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class Udi:
    gtin: str  # 14 digits, check digit verified
    lot_number: str
    expires_on: date
    serial_number: str | None
    # The human-readable form, "(01)...(17)...(10)...": what a label prints and FHIR's carrierHRF.
    carrier_hrf: str


def parse_udi(barcode: str) -> Udi:
    """The UDI of a scanned cartridge box, or BarcodeError naming what is missing or wrong."""
    value = barcode.strip(_EDGES)
    if not value:
        raise BarcodeError(["The barcode is empty."])
    if len(value) > MAX_BARCODE_LENGTH:
        raise BarcodeError([f"The barcode is longer than {MAX_BARCODE_LENGTH} characters."])
    elements = _element_strings(value)
    return _udi(elements)


def _element_strings(value: str) -> list[GS1ElementString]:
    try:
        if value.startswith("("):
            return list(GS1Message.parse_hri(value, config=_CONFIG).element_strings)
        if _URI.match(value):
            return list(GS1DigitalLinkURI.parse(value, config=_CONFIG).element_strings)
        # A leading FNC1 some scanners transmit as GS means nothing here.
        result = biip.parse(value.lstrip("\x1d"), config=_CONFIG)
    except biip.ParseError as exc:
        raise BarcodeError([f"Not a GS1 barcode: {exc}"]) from exc
    if result.gs1_message is None:
        raise BarcodeError([f"Not a GS1 barcode: {result.gs1_message_error}"])
    return list(result.gs1_message.element_strings)


def _udi(elements: list[GS1ElementString]) -> Udi:
    errors: list[str] = []
    values: dict[str, GS1ElementString] = {}
    for element in elements:
        ai = element.ai.ai
        earlier = values.get(ai)
        if earlier is not None and earlier.value != element.value:
            errors.append(f"({ai}) appears twice with different values.")
        values.setdefault(ai, element)
    missing = [f"{name} ({ai})" for ai, name in REQUIRED if ai not in values]
    if missing:
        errors.append(
            f"Missing {_and(missing)}: a cartridge UDI carries GTIN (01), expiry (17) and lot (10)."
        )
    gtin = values.get(AI_GTIN)
    if gtin is not None and gtin.gtin is None:
        errors.append(f"GTIN (01) {gtin.value}: {gtin.gtin_error or 'not a valid GTIN.'}")
    expiry = values.get(AI_EXPIRY)
    if expiry is not None and expiry.date is None:
        errors.append(f"Expiry (17) {expiry.value} is not a valid YYMMDD date.")
    if errors or gtin is None or expiry is None or expiry.date is None:
        raise BarcodeError(errors)
    lot = values[AI_LOT]
    serial = values.get(AI_SERIAL)
    hrf = "".join(f"({ai}){values[ai].value}" for ai in (AI_GTIN, AI_EXPIRY, AI_LOT))
    if serial is not None:
        hrf += f"({AI_SERIAL}){serial.value}"
    return Udi(
        gtin=gtin.value,
        lot_number=lot.value,
        expires_on=expiry.date,
        serial_number=serial.value if serial is not None else None,
        carrier_hrf=hrf,
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def normalise_gtin(gtin: str) -> str:
    """GTIN-8/12/13/14 compared as 14 digits (GS1: leading zeros pad to GTIN-14)."""
    return gtin.zfill(14)
