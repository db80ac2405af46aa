"""Page-number lists (clinic.api.pagination.PageNumberPagination): each page read in one query
(its rows and one more), with the pages, links and errors of DRF's paginator."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db

ROOMS = "/api/v1/rooms/"


def page_of(url: str | None) -> list[str] | None:
    return None if url is None else parse_qs(urlparse(url).query).get("page")


def names(body: dict) -> list[str]:
    return [room["name"] for room in body["results"]]


@pytest.fixture
def rooms(admin):
    # Listed by name (the view's ordering).
    return sorted(RoomFactory(clinic=admin.clinic, name=f"Room {n:02}").name for n in range(7))


def test_pages_walk_the_whole_list_once(api, admin, rooms):
    client = api(admin)
    first = client.get(ROOMS, {"page_size": 3}).json()
    assert (names(first), page_of(first["next"]), first["previous"]) == (rooms[:3], ["2"], None)
    second = client.get(first["next"]).json()
    # Back to page 1 is the list without `page`, as DRF writes it.
    assert (names(second), page_of(second["next"])) == (rooms[3:6], ["3"])
    assert second["previous"] is not None and page_of(second["previous"]) is None
    third = client.get(second["next"]).json()
    assert (names(third), third["next"], page_of(third["previous"])) == (rooms[6:], None, ["2"])


def test_a_full_last_page_has_no_next(api, admin, rooms):
    body = api(admin).get(ROOMS, {"page_size": 7}).json()
    assert (names(body), body["next"]) == (rooms, None)


def test_an_empty_list_is_one_empty_page(api, admin):
    body = api(admin).get(ROOMS).json()
    assert body == {"results": [], "next": None, "previous": None}


@pytest.mark.parametrize("page", ["4", str(10**30)])
def test_a_page_past_the_last_is_the_clients_mistake(api, admin, rooms, page):
    response = api(admin).get(ROOMS, {"page_size": 3, "page": page})
    assert response.status_code == 400
    assert response.json()["errors"] == {"page": ["Invalid page."]}


def test_a_page_is_one_query_with_no_count(api, admin, rooms):
    client = api(admin)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(ROOMS, {"page_size": 3, "page": 2}).status_code == 200
    room_reads = [q["sql"] for q in captured.captured_queries if "clinic_room" in q["sql"]]
    assert len(room_reads) == 1
    assert "COUNT(" not in room_reads[0].upper()
    assert "LIMIT 4 OFFSET 3" in room_reads[0]
