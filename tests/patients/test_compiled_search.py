"""The patient list and search the front desk reads (`GET /patients/`, with or without
`?search=`) come from one statement compiled per number of words
(patients.selectors.active_patients_matching, clinic.plain_sql.CompiledQuery): the same
patients, pages and errors as the filterset's queryset, scoped to the user's clinic."""

from unittest.mock import ANY

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clinic.api.base import PatientDataViewSet
from clinic.models import AuditEvent, Role
from patients import selectors
from patients.api.views import PatientFilter, PatientViewSet
from patients.models import Patient
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory
from tests.helpers import assert_problem, every_page

pytestmark = pytest.mark.django_db

PATIENTS = "/api/v1/patients/"

SEARCHES = [
    "",
    "   ",
    "jane",
    "JANE doe",
    "doe jane",
    "555-0143",
    "(202) 555",
    "example.org",
    "o'brien",
    "josé",
    "%",
    "_",
    "\\",
    "a%e",
    "j_ne",
    "jane jane jane jane jane nobody",  # the sixth word is ignored
    "jane jane jane jane nobody",
    "jane doe jd example com",  # five words, each needed
    "o_neil",
    "100%",
    "k\\slash",
    "gödel",
    "+44 7700 900002",
    "nobody",
]


@pytest.fixture
def patients(front_desk):
    clinic = front_desk.clinic
    people = [
        ("Jane", "Doe", "jd@example.com", "+12025550143"),
        ("Janet", "Doerr", "janet@example.org", "+12025550144"),
        ("John", "Smith", "smithy@example.org", "+12025550999"),
        ("Siobhán", "O'Brien", "sob@example.com", "+353861234567"),
        ("José", "Núñez", "jn@example.com", "+34600111222"),
    ]
    # LIKE's own characters, each in one patient's email, to be matched as themselves.
    people += [
        ("Ada", "Lovelace", "o_neil@example.net", "+447700900001"),
        ("Alan", "Turing", "100%club@example.net", "+447700900002"),
        ("Grace", "Hopper", "back\\slash@example.net", "+447700900003"),
        ("Kurt", "Gödel", "kg@example.net", "+431234567"),
    ]
    made = [
        PatientFactory(clinic=clinic, first_name=f, last_name=la, email=e, phone=p)
        for f, la, e, p in people
    ]
    archived = PatientFactory(clinic=clinic, first_name="Jane", last_name="Archer")
    archived.archived_at = timezone.now()
    archived.save(update_fields=["archived_at"])
    PatientFactory(first_name="Jane", last_name="Doe")  # another clinic
    return made, archived


def listed(client, **params) -> list[dict]:
    return every_page(client, PATIENTS, params)


def the_filtersets(monkeypatch) -> None:
    monkeypatch.setattr(PatientViewSet, "list_rows", PatientDataViewSet.list_rows)


@pytest.mark.parametrize("size", [2, 50])
def test_the_compiled_list_is_the_filtersets(size, front_desk, api, patients, monkeypatch):
    client = api(front_desk)
    compiled = {text: listed(client, search=text, page_size=size) for text in SEARCHES}
    compiled["(none)"] = listed(client, page_size=size)
    the_filtersets(monkeypatch)
    for text in SEARCHES:
        assert listed(client, search=text, page_size=size) == compiled[text], text
    assert listed(client, page_size=size) == compiled["(none)"]

    def ids(text):
        return {row["id"] for answer in compiled[text] for row in answer["results"]}

    made, archived = patients
    jane, janet = str(made[0].id), str(made[1].id)
    assert ids("jane") == {jane, janet}
    assert ids("JANE doe") == ids("doe jane") == {jane, janet}
    assert ids("555-0143") == {jane}
    assert ids("josé") == {str(made[4].id)}
    assert ids("o'brien") == {str(made[3].id)}
    # LIKE's own characters are matched as themselves, not as wildcards.
    o_neil, club, backslash = (str(p.id) for p in made[5:8])
    assert ids("_") == ids("o_neil") == {o_neil}
    assert ids("%") == ids("100%") == {club}
    assert ids("\\") == ids("k\\slash") == {backslash}
    assert ids("a%e") == ids("j_ne") == set()
    assert ids("jane doe jd example com") == {jane}
    assert ids("gödel") == {str(made[8].id)}
    assert ids("+44 7700 900002") == {club}
    assert ids("jane jane jane jane jane nobody") == {jane, janet}
    assert ids("jane jane jane jane nobody") == set()
    assert ids("") == ids("   ") == ids("(none)") == {str(p.id) for p in made}
    assert str(archived.id) not in ids("(none)")


def test_archived_patients_are_listed_through_the_filterset(front_desk, api, patients):
    _made, archived = patients
    body = api(front_desk).get(PATIENTS, {"archived": "true", "search": "jane"}).json()
    assert [row["id"] for row in body["results"]] == [str(archived.id)]


def test_a_nul_in_a_search_is_the_filtersets_400(front_desk, api, patients):
    response = api(front_desk).get(PATIENTS, {"search": "ja\x00ne"})
    assert set(assert_problem(response, 400, "invalid", errors=ANY)["errors"]) == {"search"}


@pytest.mark.parametrize(
    "query",
    [
        "search=doe&search=jane",
        "search=nobody&search=jane",
        "archived=false&search=jane",
        "archived=&search=jane",
        "archived=true",
        "archived=maybe",
        "page_size=3&search=e",
    ],
)
def test_other_queries_answer_as_the_filtersets(query, front_desk, api, patients, monkeypatch):
    client = api(front_desk)
    compiled = client.get(f"{PATIENTS}?{query}")
    the_filtersets(monkeypatch)
    built = client.get(f"{PATIENTS}?{query}")
    assert (compiled.status_code, compiled.json()) == (built.status_code, built.json())


def test_the_compiled_lists_sql_is_the_filtersets(clinic, rf, front_desk):
    """No search: the same SQL as the view's scoped queryset through its filterset."""
    request = rf.get(PATIENTS)
    filterset = PatientFilter(
        request.GET, queryset=PatientViewSet.scoped_queryset(clinic.id), request=request
    )
    assert filterset.is_valid()
    with CaptureQueriesContext(connection) as captured:
        list(filterset.qs[0:11])
        selectors.active_patients_matching(clinic.id, "")[0:11]
    built, compiled = (q["sql"] for q in captured.captured_queries)
    # The window's bounds are the compiled statement's parameters: an OFFSET 0 the ORM omits.
    assert compiled == f"{built} OFFSET 0"


def test_a_page_past_the_last_is_400_as_before(front_desk, api, patients, monkeypatch):
    client = api(front_desk)
    compiled = client.get(PATIENTS, {"search": "jane", "page": 2})
    assert_problem(compiled, 400, "invalid", errors={"page": ["Invalid page."]})
    the_filtersets(monkeypatch)
    assert client.get(PATIENTS, {"search": "jane", "page": 2}).json() == compiled.json()


def test_another_clinic_sees_only_its_own(api, make_user, other_clinic, patients):
    theirs = api(make_user(Role.FRONT_DESK, other_clinic))
    assert theirs.get(PATIENTS, {"search": "jane"}).json()["results"] == []


def test_each_patient_listed_is_audited(front_desk, api, patients):
    assert len(api(front_desk).get(PATIENTS, {"search": "jane"}).json()["results"]) == 2
    events = AuditEvent.objects.filter(action="patient.list")
    made, _archived = patients
    assert {str(e.patient_id) for e in events} == {str(made[0].id), str(made[1].id)}


def test_a_search_builds_no_query_once_compiled(front_desk, api, patients, monkeypatch):
    client = api(front_desk)
    assert client.get(PATIENTS, {"search": "jane doe"}).status_code == 200  # compiled here
    built = []
    active, scoped = selectors.patients_of_clinic, PatientViewSet.get_queryset

    def counted(clinic_id, **kwargs):
        built.append(clinic_id)
        return active(clinic_id, **kwargs)

    def counted_scoped(view):
        built.append(view)
        return scoped(view)

    monkeypatch.setattr(selectors, "patients_of_clinic", counted)
    monkeypatch.setattr(PatientViewSet, "get_queryset", counted_scoped)
    with CaptureQueriesContext(connection) as captured:
        assert len(client.get(PATIENTS, {"search": "doe jane"}).json()["results"]) == 2
    assert built == []
    reads = [q["sql"] for q in captured.captured_queries if 'FROM "patients_patient"' in q["sql"]]
    assert len(reads) == 1


def test_a_words_pattern_is_containss_own_sql():
    """`like_pattern` writes what `contains` writes, word by word (so the trigram index
    serves it alike and the words match as they did)."""
    patients = Patient.objects.filter(clinic_id=None)
    for text, needles in (
        ("jane", ["JANE"]),
        ("555-0143", ["5550143"]),
        ("a%_\\b", ["A%_\\B"]),
        ("josé núñez", ["JOSÉ", "NÚÑEZ"]),
        ("jane (202) 555-01", ["JANE", "202", "55501"]),
        ("+44 7700", ["+44", "7700"]),  # two digits are not a phone fragment
        ("a b c d e f", ["A", "B", "C", "D", "E"]),
    ):
        django = patients
        for needle in needles:
            django = django.filter(search_text__contains=needle)
        ours = selectors.search_patients(patients, text).query.sql_with_params()
        assert ours == django.query.sql_with_params(), text
