"""Instances from a hand-written SELECT (clinic.plain_sql) are the ORM's instances: the token
lookup every request makes reads what `select_related("user__clinic")` reads."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken

from clinic.authentication import tokens_with_key
from clinic.models import Role, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_token_its_user_and_clinic_are_the_orms(make_user, clinic):
    user = make_user(Role.PROVIDER, clinic)
    token, _secret = AuthToken.objects.create(user=user)
    AuthToken.objects.create(user=make_user(Role.FRONT_DESK, clinic))  # another key
    expected = AuthToken.objects.select_related("user__clinic").get(token_key=token.token_key)

    with CaptureQueriesContext(connection) as captured:
        (found,) = tokens_with_key(token.token_key)
        # The user and the clinic come with the token: nothing more is read for them.
        assert found.user.clinic.zone == clinic.zone
    assert len(captured) == 1

    assert values(found) == values(expected)
    assert values(found.user) == values(expected.user)
    assert values(found.user.clinic) == values(expected.user.clinic)
    assert found == expected and found.user == user
    # As loaded from the database: saved with an UPDATE, not inserted again.
    assert not found._state.adding and found._state.db == "default"
    assert not found.user._state.adding


def test_a_user_of_no_clinic_has_no_clinic():
    superuser = UserFactory(clinic=None, role=Role.ADMIN, is_superuser=True)
    token, _secret = AuthToken.objects.create(user=superuser)
    (found,) = tokens_with_key(token.token_key)
    assert found.user == superuser
    assert found.user.clinic is None


def test_no_token_with_the_key_is_no_row():
    assert list(tokens_with_key("00000000")) == []


def test_the_select_names_every_column_of_the_three_models():
    from clinic.authentication import _token_sql
    from clinic.models import Clinic

    sql = _token_sql()
    for alias, model in (("t", AuthToken), ("u", User), ("c", Clinic)):
        for field in model._meta.concrete_fields:
            assert f"{alias}.{field.column}" in sql
