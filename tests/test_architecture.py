"""The code's shape, checked: no module of the apps imports itself back through others, and no
app module outgrows what a newcomer can read (issue 10). The layers and the API boundary are
import-linter's contracts (pyproject.toml, run by scripts/test.sh)."""

from pathlib import Path

import grimp

APPS = ("clinic", "patients", "scheduling", "treatments")
ROOT = Path(__file__).resolve().parent.parent
# Beyond this a module holds more than one responsibility; split it (scheduling/services/).
MAX_LINES = 600


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over every import statement,
    those inside functions included."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges[module]:
            if imported not in edges:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back():
    graph = grimp.build_graph(*APPS, cache_dir=None)
    assert len(graph.modules) > 100  # the apps were found
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert cycles(graph) == [["a.x", "a.y"]]


def test_no_app_module_is_over_the_limit():
    long = {
        str(path.relative_to(ROOT)): lines
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


def test_every_api_filterset_is_made_once_per_class():
    """Each filterset builds on clinic.api.fields.FilterSet (no per-request deep copies)."""
    from django_filters import FilterSet as DjangoFilterSet
    from django_filters.filters import QuerySetRequestMixin

    import clinic.urls  # noqa: F401 (every view, and with them every filterset)
    from clinic.api.fields import FilterSet

    ours = [cls for cls in subclasses(DjangoFilterSet) if cls.__module__.split(".")[0] in APPS]
    assert len(ours) >= 9
    assert [cls for cls in ours if not issubclass(cls, FilterSet)] == []
    # Its form class is built once per class: no filter may build its choices per request.
    per_request = [
        (cls.__name__, name)
        for cls in ours
        for name, filter_ in cls.base_filters.items()
        if isinstance(filter_, QuerySetRequestMixin) and callable(filter_.queryset)
    ]
    assert per_request == []
