"""The reply keywords and the flags a refresh keeps: pure rules."""

import pytest

from scheduling import rules


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("C", "confirmed"),
        ("c", "confirmed"),
        ("  yEs \r\n", "confirmed"),
        ("R", "reschedule_requested"),
        ("\tr ", "reschedule_requested"),
        ("STOP", "opted_out"),
        (" sToP", "opted_out"),
        ("", "none"),
        ("C.", "none"),
        ("Yes please", "none"),
        ("STOP NOW", "none"),
        ("C R", "none"),
    ],
)
def test_reply_action(body, action):
    assert rules.reply_action(body) == action


def test_a_refresh_keeps_the_reschedule_request_and_recomputes_the_rest():
    current = ["screening_expired", "reschedule_requested"]
    assert rules.session_flags([], current) == ["reschedule_requested"]
    assert rules.session_flags(["no_screening"], current) == [
        "not_eligible",
        "reschedule_requested",
    ]
    assert rules.session_flags(["screening_expired"]) == ["screening_expired"]
