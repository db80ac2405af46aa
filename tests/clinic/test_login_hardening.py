"""The attacks of issue 15 on logins, replayed: one lockout for API and back office, a
progressive delay instead of a lock strangers can trigger, per-address limits behind trusted
proxies, device tokens, TOTP, idle logoff."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken
from rest_framework.test import APIClient

from clinic import auth, services
from clinic.models import AuditEvent, LoginFailureCounter, Role
from tests.clinic import totp
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PASSWORD

TOKEN_URL = "/api/v1/auth/token/"
ADMIN_LOGIN = "/admin/login/"
PROBLEM = "application/problem+json"


def api_login(username, password=PASSWORD, *, headers=None, **fields):
    return APIClient(headers=headers or {}).post(
        TOKEN_URL, {"username": username, "password": password, **fields}, format="json"
    )


def admin_login(browser, username, password=PASSWORD, otp_token="", **extra):
    return browser.post(
        ADMIN_LOGIN,
        {"username": username, "password": password, "otp_token": otp_token},
        **extra,
    )


def assert_throttled(response, retry_after=None):
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "throttled"
    if retry_after is not None:
        assert int(response["Retry-After"]) == retry_after
    else:
        assert int(response["Retry-After"]) > 0


@pytest.fixture
def staff_admin(make_user, clinic):
    # As services.create_staff makes them: clinic admins may use the back office.
    return make_user(Role.ADMIN, clinic, is_staff=True)


@pytest.fixture
def back_office_admin(staff_admin):
    return staff_admin, totp.enrol(staff_admin)


# --- One lockout for API and back office ----------------------------------------------------------


@pytest.mark.django_db
def test_twelve_wrong_back_office_passwords_then_the_right_one_is_throttled(back_office_admin):
    admin, device = back_office_admin
    browser = Client()
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [admin_login(browser, admin.username, "wrong").status_code for _ in range(12)]
        assert statuses == [200] * 5 + [429] * 7

        response = admin_login(browser, admin.username, otp_token=totp.code(device))

    assert response.status_code == 429
    assert int(response["Retry-After"]) == 60
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in browser.session
    outcomes = AuditEvent.objects.filter(action="auth.login").values_list("outcome", flat=True)
    assert sorted(outcomes) == ["denied"] * 8 + ["failed"] * 5


@pytest.mark.django_db
def test_back_office_and_api_failures_count_toward_one_lockout(back_office_admin):
    admin, device = back_office_admin
    browser = Client()
    for _ in range(3):
        assert admin_login(browser, admin.username, "wrong").status_code == 200
    for _ in range(2):
        assert api_login(admin.username, "wrong").status_code == 401

    assert_throttled(api_login(admin.username), retry_after=60)
    assert admin_login(browser, admin.username, otp_token=totp.code(device)).status_code == 429


@pytest.mark.django_db
def test_the_back_office_requires_a_totp_code(staff_admin):
    admin = staff_admin
    browser = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        not_enrolled = admin_login(browser, admin.username)
        assert not_enrolled.status_code == 200
        assert "requires two-factor authentication" in not_enrolled.content.decode()
        assert "_auth_user_id" not in browser.session

        device = totp.enrol(admin)
        without_code = admin_login(browser, admin.username)
        assert "Enter the current code" in without_code.content.decode()
        wrong = admin_login(browser, admin.username, otp_token=totp.code(device, steps_ahead=5))
        assert "Invalid authentication code." in wrong.content.decode()
        assert "_auth_user_id" not in browser.session

        clock.shift(2)  # django-otp's own per-device delay after a wrong code: 1 s, then 2 s...
        response = admin_login(browser, admin.username, otp_token=totp.code(device))
        assert response.status_code == 302
        assert browser.get("/admin/").status_code == 200
    failures = AuditEvent.objects.filter(action="auth.login", outcome="failed")
    assert sorted(e.detail["factor"] for e in failures) == [
        "otp_invalid",
        "otp_not_enrolled",
        "otp_required",
    ]
    assert {e.detail["via"] for e in failures} == {"admin"}


@pytest.mark.django_db
def test_a_back_office_session_without_a_verified_device_is_not_let_in(back_office_admin):
    admin, _device = back_office_admin
    browser = Client()
    browser.force_login(admin)  # a password-only session (e.g. made before TOTP was required)
    response = browser.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(ADMIN_LOGIN)


# --- Progressive delay ----------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT=5, LOGIN_DELAY_BASE_SECONDS=60)
def test_after_the_limit_each_attempt_waits_a_doubling_delay(front_desk):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            assert api_login(front_desk.username, "wrong").status_code == 401
        assert_throttled(api_login(front_desk.username), retry_after=60)
        clock.shift(30)
        # A refused attempt tests no password and does not lengthen the delay.
        assert_throttled(api_login(front_desk.username, "wrong"), retry_after=30)
        clock.shift(31)
        assert api_login(front_desk.username, "wrong").status_code == 401
        assert_throttled(api_login(front_desk.username), retry_after=120)
        clock.shift(121)
        assert api_login(front_desk.username, "wrong").status_code == 401
        assert_throttled(api_login(front_desk.username), retry_after=240)
        clock.shift(241)
        assert api_login(front_desk.username).status_code == 200
        # Success forgets the failures: the limit applies afresh.
        for _ in range(5):
            assert api_login(front_desk.username, "wrong").status_code == 401
        assert_throttled(api_login(front_desk.username), retry_after=60)


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT=1, LOGIN_DELAY_BASE_SECONDS=60, LOGIN_DELAY_MAX_SECONDS=300)
def test_the_delay_is_capped_and_failures_are_forgotten_after_a_quiet_window(front_desk):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delays = []
        for _ in range(6):
            assert api_login(front_desk.username, "wrong").status_code == 401
            response = api_login(front_desk.username, "wrong")
            delays.append(int(response["Retry-After"]))
            clock.shift(delays[-1] + 1)
        assert delays == [60, 120, 240, 300, 300, 300]
        clock.shift(900)
        assert api_login(front_desk.username, "wrong").status_code == 401
        assert_throttled(api_login(front_desk.username), retry_after=60)


# --- Device tokens --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_strangers_failures_do_not_lock_out_a_device_token_holder(front_desk):
    first = api_login(front_desk.username)
    device_token = first["X-Device-Token"]
    assert set(first.json()) == {"token", "expires_at"}

    for _ in range(20):
        api_login(front_desk.username, "guess")
    assert_throttled(api_login(front_desk.username))

    by_header = api_login(front_desk.username, headers={"X-Device-Token": device_token})
    assert by_header.status_code == 200
    by_field = api_login(front_desk.username, device_token=by_header["X-Device-Token"])
    assert by_field.status_code == 200
    # Still delayed for everyone else.
    assert_throttled(api_login(front_desk.username))


@pytest.mark.django_db
def test_a_device_token_is_counted_on_its_own_and_bound_to_its_username(front_desk, provider):
    device_token = api_login(front_desk.username)["X-Device-Token"]
    for _ in range(5):
        assert api_login(front_desk.username, "wrong", device_token=device_token).status_code == 401
    assert_throttled(api_login(front_desk.username, device_token=device_token))
    # The holder's own failures did not delay the username for others.
    assert api_login(front_desk.username).status_code == 200

    for _ in range(5):
        api_login(provider.username, "guess")
    # Another user's token, or a forged one, counts like no token at all.
    for token in (device_token, device_token[:-2] + "xx", "garbage"):
        assert_throttled(api_login(provider.username, device_token=token))


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT_PER_ADDRESS=5)
def test_a_device_token_holder_is_not_locked_out_by_others_at_the_same_address(front_desk):
    device_token = api_login(front_desk.username)["X-Device-Token"]
    for name in ("ann", "bob", "cy", "di", "ed"):
        assert api_login(name, "guess").status_code == 401
    assert_throttled(api_login("fay", "guess"))
    assert_throttled(api_login(front_desk.username))

    assert api_login(front_desk.username, device_token=device_token).status_code == 200


@pytest.mark.django_db
def test_the_back_office_sets_an_http_only_device_cookie_that_beats_strangers(
    back_office_admin,
):
    admin, device = back_office_admin
    mine = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        response = admin_login(mine, admin.username, otp_token=totp.code(device))
        assert response.status_code == 302
        cookie = response.cookies[auth.DEVICE_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/admin/"
        mine.post("/admin/logout/")

        stranger = Client()
        for _ in range(12):
            admin_login(stranger, admin.username, "guess")
        clock.shift(30)  # the next TOTP step: a code is good once
        assert admin_login(stranger, admin.username, otp_token=totp.code(device)).status_code == (
            429
        )
        assert admin_login(mine, admin.username, otp_token=totp.code(device)).status_code == 302


# --- Client addresses behind proxies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "203.0.113.7"),
        (1, "not-an-address", "10.0.0.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_is_read_from_the_right_behind_trusted_proxies(
    trusted, forwarded, expected
):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", **headers)
    with override_settings(TRUSTED_PROXY_COUNT=trusted):
        assert auth.client_address(request) == expected


def test_ipv6_clients_are_counted_per_64():
    assert auth.address_key("2001:db8:1:2:aaaa::1") == auth.address_key("2001:db8:1:2::9")
    assert auth.address_key("2001:db8:1:3::1") != auth.address_key("2001:db8:1:2::1")
    assert (
        auth.address_key("::ffff:192.0.2.1")
        == auth.address_key("192.0.2.1")
        == ("address:192.0.2.1")
    )


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT_PER_ADDRESS=3, TRUSTED_PROXY_COUNT=0)
def test_without_trusted_proxies_x_forwarded_for_is_ignored(front_desk):
    for i, name in enumerate(("ann", "bob", "cy")):
        forwarded = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{i}"}
        assert (
            APIClient()
            .post(TOKEN_URL, {"username": name, "password": "x"}, format="json", **forwarded)
            .status_code
            == 401
        )
    response = APIClient().post(
        TOKEN_URL,
        {"username": front_desk.username, "password": PASSWORD},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.99",
    )
    assert_throttled(response)


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT_PER_ADDRESS=3, TRUSTED_PROXY_COUNT=1)
def test_behind_a_trusted_proxy_each_client_has_its_own_address_limit(front_desk):
    def attempt(forwarded, username, password="x"):  # noqa: S107
        return APIClient().post(
            TOKEN_URL,
            {"username": username, "password": password},
            format="json",
            REMOTE_ADDR="10.0.0.1",  # the proxy, the same for everyone
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    # The attacker writes a new address on the left each time: the proxy's entry is taken.
    for i, name in enumerate(("ann", "bob", "cy")):
        assert attempt(f"192.0.2.{i}, 203.0.113.66", name).status_code == 401
    assert_throttled(attempt("192.0.2.200, 203.0.113.66", "di"))
    # Another client behind the same proxy is not affected.
    assert attempt("203.0.113.7", front_desk.username, PASSWORD).status_code == 200
    assert set(
        LoginFailureCounter.objects.filter(key__startswith="address:").values_list("key", flat=True)
    ) == {"address:203.0.113.66", "address:203.0.113.7"}


# --- TOTP on the API ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_user_with_a_confirmed_totp_device_must_send_the_code(front_desk):
    device = totp.enrol(front_desk)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        missing = api_login(front_desk.username)
        assert missing.status_code == 401
        assert missing.json() == {
            "type": "https://skinpen-clinic.example/problems/authentication_failed",
            "title": "Not authenticated",
            "status": 401,
            "detail": "This account uses two-factor authentication: send `otp`, the current "
            "one-time code.",
            "code": "authentication_failed",
            "otp_required": True,
        }
        wrong = api_login(front_desk.username, otp=totp.code(device, steps_ahead=5))
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "Invalid one-time code."
        assert api_login(front_desk.username, otp="12x456").status_code == 401

        clock.shift(2)  # django-otp's own per-device delay after a wrong code: 1 s, then 2 s...
        code = totp.code(device)
        assert api_login(front_desk.username, otp=code).status_code == 200
        replayed = api_login(front_desk.username, otp=code)
        assert replayed.status_code == 401
        assert replayed.json()["detail"] == "Invalid one-time code."
        clock.shift(30)
        assert api_login(front_desk.username, otp=totp.code(device)).status_code == 200


@pytest.mark.django_db
def test_a_wrong_password_with_totp_says_nothing_about_the_second_factor(front_desk):
    device = totp.enrol(front_desk)
    response = api_login(front_desk.username, "wrong", otp=totp.code(device))
    assert response.status_code == 401
    assert "otp_required" not in response.json()


@pytest.mark.django_db
def test_users_without_a_confirmed_device_log_in_with_a_password_alone(front_desk, admin):
    TOTPDevice.objects.create(user=front_desk, name="pending", confirmed=False)
    assert api_login(front_desk.username).status_code == 200
    assert api_login(admin.username).status_code == 200


@pytest.mark.django_db
def test_enroll_totp_prints_the_uri_then_confirms_with_a_code(front_desk, capsys):
    call_command("enroll_totp", "--username", front_desk.username)
    uri = capsys.readouterr().out.strip()
    assert uri.startswith("otpauth://totp/SkinPen%20clinic%3A")
    assert "secret=" in uri
    assert api_login(front_desk.username).status_code == 200  # not yet confirmed

    device = TOTPDevice.objects.get(user=front_desk)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        with pytest.raises(CommandError, match="Invalid one-time code"):
            call_command("enroll_totp", "--username", front_desk.username, "--code", "000000")
        clock.shift(2)
        call_command("enroll_totp", "--username", front_desk.username, "--code", totp.code(device))
        assert api_login(front_desk.username).status_code == 401
        clock.shift(30)
        assert api_login(front_desk.username, otp=totp.code(device)).status_code == 200

    call_command("enroll_totp", "--username", front_desk.username, "--remove")
    assert api_login(front_desk.username).status_code == 200
    actions = AuditEvent.objects.filter(action__startswith="staff.totp")
    assert sorted((e.action, e.actor_label) for e in actions) == [
        ("staff.totp_enrolment_confirm", "manage.py enroll_totp"),
        ("staff.totp_enrolment_start", "manage.py enroll_totp"),
        ("staff.totp_remove", "manage.py enroll_totp"),
    ]


@pytest.mark.django_db
def test_enroll_totp_names_an_unknown_user():
    with pytest.raises(CommandError, match=r"username: No such user\."):
        call_command("enroll_totp", "--username", "nobody")


# --- Idle logoff ----------------------------------------------------------------------------------


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
@override_settings(TOKEN_IDLE_MINUTES=30)
def test_a_token_unused_for_the_idle_time_stops_working(front_desk):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        body = api_login(front_desk.username).json()
        assert timezone.datetime.fromisoformat(body["expires_at"]) == start + timedelta(hours=10)
        client = bearer(body["token"])
        for _ in range(4):  # used every 25 minutes: never idle for 30
            clock.shift(timedelta(minutes=25))
            assert client.get("/api/v1/clinic/").status_code == 200
        clock.shift(timedelta(minutes=31))
        response = client.get("/api/v1/clinic/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert not AuthToken.objects.filter(user=front_desk).exists()  # deleted when presented


@pytest.mark.django_db
@override_settings(TOKEN_IDLE_MINUTES=30)
def test_a_token_in_constant_use_still_ends_at_its_absolute_lifetime(front_desk):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = bearer(api_login(front_desk.username).json()["token"])
        for _ in range(int(10 * 60 / 20) - 1):
            clock.shift(timedelta(minutes=20))
            assert client.get("/api/v1/clinic/").status_code == 200
        clock.move_to(start + timedelta(hours=10, seconds=1))
        assert client.get("/api/v1/clinic/").status_code == 401


@pytest.mark.django_db
@override_settings(TOKEN_IDLE_MINUTES=30, TOKEN_REFRESH_INTERVAL_SECONDS=60)
def test_the_idle_deadline_is_written_at_most_once_a_minute(front_desk):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = bearer(api_login(front_desk.username).json()["token"])
        with CaptureQueriesContext(connection) as first:
            client.get("/api/v1/clinic/")
        clock.shift(30)
        with CaptureQueriesContext(connection) as soon_after:
            client.get("/api/v1/clinic/")
        clock.shift(31)
        with CaptureQueriesContext(connection) as a_minute_later:
            client.get("/api/v1/clinic/")
    writes = [
        sum(q["sql"].startswith('UPDATE "knox_authtoken"') for q in ctx.captured_queries)
        for ctx in (first, soon_after, a_minute_later)
    ]
    assert writes == [0, 0, 1]


@pytest.mark.django_db
def test_authenticating_does_not_load_the_users_other_tokens(front_desk, django_user_model):
    token = api_login(front_desk.username).json()["token"]

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert bearer(token).get("/api/v1/clinic/").status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    with time_machine.travel(timezone.now() - timedelta(hours=11)):
        for _ in range(30):
            AuthToken.objects.create(user=front_desk)  # expired by now
    for _ in range(30):
        AuthToken.objects.create(user=front_desk)
    assert queries() == few
    assert AuthToken.objects.filter(user=front_desk).count() == 61

    assert services.delete_expired_tokens() == 30
    assert bearer(token).get("/api/v1/clinic/").status_code == 200


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_FAILURE_LIMIT=5)
def test_twenty_concurrent_bad_logins_with_one_device_token_let_five_through(make_user, clinic):
    user = make_user(Role.PROVIDER, clinic)
    device_token = auth.issue_device_token(user.username)

    def attempt(_):
        try:
            return api_login(user.username, "wrong", device_token=device_token).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))

    assert (statuses.count(401), statuses.count(429)) == (5, 15)
    # Counted on the device alone: the username is not delayed for anyone else.
    assert api_login(user.username).status_code == 200


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_an_idempotency_key_does_not_roll_back_the_count_of_a_bad_login(front_desk):
    for i in range(3):
        response = api_login(front_desk.username, "wrong", headers={"Idempotency-Key": f"k{i}"})
        assert response.status_code == 401
    assert_throttled(api_login(front_desk.username, headers={"Idempotency-Key": "k9"}))
