"""Every fixture name means one thing: no two conftest files define (or import) the same fixture,
and no test module quietly redefines one a conftest above it offers. A fixture several apps
share lives in tests/conftest.py; an app's conftest keeps only its own."""

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr == "fixture"
    return isinstance(target, ast.Name) and target.id == "fixture"


def _fixture_name(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for decorator in node.decorator_list:
        if _is_fixture(decorator):
            if isinstance(decorator, ast.Call):
                for keyword in decorator.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        return str(keyword.value.value)
            return node.name
    return None


def _parse(path: Path) -> list[ast.stmt]:
    return ast.parse(path.read_text(), filename=str(path)).body


def fixtures_in(path: Path) -> dict[str, int]:
    """Fixture name -> line, for the fixtures a module defines at its top level."""
    found: dict[str, int] = {}
    for node in _parse(path):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = _fixture_name(node)
            if name is not None:
                found[name] = node.lineno
    return found


def imported_from_tests(path: Path) -> dict[str, int]:
    """Name -> line, for what a module imports from the test package."""
    found: dict[str, int] = {}
    for node in _parse(path):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            for alias in node.names:
                found.setdefault(alias.asname or alias.name, node.lineno)
    return found


def conftests() -> dict[Path, dict[str, int]]:
    """Each conftest's fixtures: the ones it defines, and any fixture (defined in a conftest or
    a test module) that it imports, which pytest would register there a second time."""
    defined = {path: fixtures_in(path) for path in sorted(TESTS.rglob("*.py"))}
    fixture_names = {name for found in defined.values() for name in found}
    every = {}
    for path in sorted(TESTS.rglob("conftest.py")):
        imported = {
            name: line for name, line in imported_from_tests(path).items() if name in fixture_names
        }
        every[path] = {**imported, **defined[path]}
    return every


def test_no_fixture_is_defined_in_two_conftests():
    where: dict[str, list[str]] = defaultdict(list)
    for path, found in conftests().items():
        for name, line in found.items():
            where[name].append(f"{path.relative_to(TESTS.parent)}:{line}")
    twice = {name: places for name, places in where.items() if len(places) > 1}
    assert twice == {}, f"fixtures defined more than once: {twice}"


def test_no_test_module_redefines_a_conftest_fixture():
    every = conftests()
    shadowed = []
    for module in sorted(TESTS.rglob("test_*.py")):
        visible = {
            name: path
            for path, found in every.items()
            if module.is_relative_to(path.parent)
            for name in found
        }
        for name, line in fixtures_in(module).items():
            if name in visible:
                shadowed.append(
                    f"{module.relative_to(TESTS.parent)}:{line} {name} "
                    f"(also {visible[name].relative_to(TESTS.parent)})"
                )
    assert shadowed == []


def test_the_check_sees_the_suites_fixtures():
    """Guard against the check finding nothing (a moved directory, a renamed decorator)."""
    root = conftests()[TESTS / "conftest.py"]
    assert {"clinic", "provider", "api", "private_broker", "work_dir"} <= root.keys()
    assert "make_session" in conftests()[TESTS / "treatments" / "conftest.py"]
