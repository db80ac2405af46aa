"""The GS1 UDI parser (treatments.gs1): a pure function, tested by table."""

from datetime import date

import pytest
import time_machine

from treatments.gs1 import BarcodeError, Udi, parse_udi

GTIN = "00850012345671"  # check digit 1
GS = "\x1d"
HRF = f"(01){GTIN}(17)280315(10)SP2401(21)C000123"
NO_SERIAL_HRF = f"(01){GTIN}(17)280315(10)SP2401"

WITH_SERIAL = Udi(
    gtin=GTIN,
    lot_number="SP2401",
    expires_on=date(2028, 3, 15),
    serial_number="C000123",
    carrier_hrf=HRF,
)
WITHOUT_SERIAL = Udi(
    gtin=GTIN,
    lot_number="SP2401",
    expires_on=date(2028, 3, 15),
    serial_number=None,
    carrier_hrf=NO_SERIAL_HRF,
)


@pytest.fixture(autouse=True)
def _today():
    # GS1 reads YY within a window around the current year; pin it.
    with time_machine.travel(date(2026, 6, 1), tick=False):
        yield


@pytest.mark.parametrize(
    ("barcode", "expected"),
    [
        # Element strings as scanners send them: FNC1 as GS after variable-length AIs.
        (f"01{GTIN}17280315{GS}10SP2401{GS}21C000123", WITH_SERIAL),
        (f"01{GTIN}1728031510SP2401{GS}21C000123", WITH_SERIAL),
        (f"01{GTIN}1728031510SP2401", WITHOUT_SERIAL),
        # Serial first, lot last: order does not matter.
        (f"01{GTIN}21C000123{GS}1728031510SP2401", WITH_SERIAL),
        # Symbology identifiers: DataMatrix, GS1-128, QR.
        (f"]d201{GTIN}1728031510SP2401{GS}21C000123", WITH_SERIAL),
        (f"]C101{GTIN}1728031510SP2401{GS}21C000123", WITH_SERIAL),
        (f"]Q301{GTIN}1728031510SP2401{GS}21C000123", WITH_SERIAL),
        # A leading FNC1 transmitted as GS, a trailing GS, a line end from the scanner.
        (f"{GS}01{GTIN}1728031510SP2401{GS}", WITHOUT_SERIAL),
        (f"]d201{GTIN}1728031510SP2401\r\n", WITHOUT_SERIAL),
        # The human-readable form.
        (HRF, WITH_SERIAL),
        (NO_SERIAL_HRF, WITHOUT_SERIAL),
        (f"(01){GTIN}(10)SP2401(17)280315", WITHOUT_SERIAL),
        # GS1 Digital Link URIs, any host, qualifiers in the path or the query.
        (f"https://id.gs1.org/01/{GTIN}/10/SP2401/21/C000123?17=280315", WITH_SERIAL),
        (f"https://crown.example/01/{GTIN}/10/SP2401?17=280315", WITHOUT_SERIAL),
        (f"HTTPS://id.gs1.org/01/{GTIN}/10/SP2401?17=280315&21=C000123", WITH_SERIAL),
    ],
)
def test_every_form_of_the_same_udi(barcode, expected):
    assert parse_udi(barcode) == expected


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("280300", date(2028, 3, 31)),  # day 00: the month's last day
        ("280200", date(2028, 2, 29)),  # leap year
        ("270200", date(2027, 2, 28)),
        ("281200", date(2028, 12, 31)),
        ("280430", date(2028, 4, 30)),
        ("991231", date(1999, 12, 31)),  # GS1's century window: more than 50 years ahead is past
    ],
)
def test_expiry_yymmdd_with_day_00_the_last_day_of_the_month(expiry, expected):
    udi = parse_udi(f"(01){GTIN}(17){expiry}(10)SP2401")
    assert udi.expires_on == expected
    assert udi.carrier_hrf == f"(01){GTIN}(17){expiry}(10)SP2401"


@pytest.mark.parametrize(
    ("barcode", "messages"),
    [
        ("", ["The barcode is empty."]),
        (" \r\n", ["The barcode is empty."]),
        (
            f"(01){GTIN}(10)SP2401",
            [
                "Missing expiry date (17): a cartridge UDI carries GTIN (01), expiry (17) "
                "and lot (10)."
            ],
        ),
        (
            f"01{GTIN}",
            [
                "Missing expiry date (17) and lot number (10): a cartridge UDI carries GTIN "
                "(01), expiry (17) and lot (10)."
            ],
        ),
        (
            "(17)280315(10)SP2401(21)C1",
            ["Missing GTIN (01): a cartridge UDI carries GTIN (01), expiry (17) and lot (10)."],
        ),
        (
            f"https://id.gs1.org/01/{GTIN}?17=280315",
            [
                "Missing lot number (10): a cartridge UDI carries GTIN (01), expiry (17) and "
                "lot (10)."
            ],
        ),
        (
            "(01)00850012345672(17)280315(10)SP2401",
            [
                "GTIN (01) 00850012345672: Invalid GTIN check digit for '00850012345672': "
                "Expected 1, got 2."
            ],
        ),
        (
            "]d20100850012345672172803151" + "0SP2401",
            [
                "GTIN (01) 00850012345672: Invalid GTIN check digit for '00850012345672': "
                "Expected 1, got 2."
            ],
        ),
        (
            "https://id.gs1.org/01/00850012345672/10/SP2401?17=280315",
            [
                "GTIN (01) 00850012345672: Invalid GTIN check digit for '00850012345672': "
                "Expected 1, got 2."
            ],
        ),
        (f"(01){GTIN}(17)280231(10)SP2401", ["Expiry (17) 280231 is not a valid YYMMDD date."]),
        (
            f"(01){GTIN}(17)280315(10)SP2401(10)SP2402",
            ["(10) appears twice with different values."],
        ),
    ],
)
def test_what_is_missing_or_wrong_is_named(barcode, messages):
    with pytest.raises(BarcodeError) as caught:
        parse_udi(barcode)
    assert caught.value.messages == messages


@pytest.mark.parametrize(
    "barcode",
    [
        "SP2401",
        "hello world",
        f"(01){GTIN}(17)2803(10)SP2401",
        f"(01){GTIN}(17)281315(10)SP2401",
        "https://example.com/products/skinpen",
        f"]d201{GTIN}17280315" + "10" + "X" * 30,
        "x" * 600,
    ],
)
def test_what_is_not_a_gs1_udi_is_refused(barcode):
    with pytest.raises(BarcodeError) as caught:
        parse_udi(barcode)
    assert caught.value.messages
    assert all(isinstance(message, str) and message for message in caught.value.messages)
