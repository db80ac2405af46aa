"""List endpoints: the query count does not grow with the page."""

import pytest

from tests.factories import HandpieceFactory, RoomFactory, UserFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "make"),
    [
        ("/api/v1/rooms/", lambda clinic, n: RoomFactory.create_batch(n, clinic=clinic)),
        ("/api/v1/handpieces/", lambda clinic, n: HandpieceFactory.create_batch(n, clinic=clinic)),
        ("/api/v1/staff/", lambda clinic, n: UserFactory.create_batch(n, clinic=clinic)),
    ],
)
def test_list_query_count_is_constant(admin, api, path, make):
    client = api(admin)
    make(admin.clinic, 1)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert client.get(path).status_code == 200
    make(admin.clinic, 20)
    with CaptureQueriesContext(connection) as large:
        assert len(client.get(path).json()["results"]) >= 21
    assert len(large) == len(small)
