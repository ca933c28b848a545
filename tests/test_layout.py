"""How the tests themselves are written: shared helpers live in helper modules, never in a test
module or a conftest; every test module says what it documents; no test is skipped."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.factories import ROOT

TESTS = ROOT / "tests"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _is_test_or_conftest(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every import in `tree`, nested ones too; `from a import b` gives both
    `a` and `a.b`, since `b` may be a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_modules_under_tests_never_import_a_test_module_or_a_conftest() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_modules(ast.parse(path.read_text(), str(path)))
        if module.startswith("tests.") and _is_test_or_conftest(module)
    ]
    assert not offences, (
        "shared helpers belong in tests/factories.py (or another helper module such as "
        "tests/iris.py), not in a test module or a conftest:\n" + "\n".join(offences)
    )


def test_the_import_check_sees_test_modules_and_conftests() -> None:
    source = (
        "from tests.factories import json_of\n"
        "from tests.http import test_training\n"
        "def later():\n"
        "    import tests.conftest\n"
    )
    modules = [m for _, m in imported_modules(ast.parse(source))]
    flagged = [m for m in modules if m.startswith("tests.") and _is_test_or_conftest(m)]
    assert flagged == ["tests.http.test_training", "tests.conftest"]


def test_every_test_module_starts_with_a_docstring() -> None:
    missing = [
        _module_name(path)
        for path in sorted(TESTS.rglob("test_*.py"))
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing, "say in a module docstring what behaviour it documents: " + str(missing)


SKIPPING = """
import sys
import pytest

def test_skipped_inside():
    pytest.skip("no server here")

@pytest.mark.skipif(sys.platform != "nowhere", reason="only runs nowhere")
def test_skipped_by_mark():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
"""


def test_a_skip_is_reported_as_a_failure_with_its_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skipping=SKIPPING)
    result = pytester.runpytest("-p", "tests.no_skips")
    # A skip in the call phase fails the test; one decided at setup (a mark) is an error.
    result.assert_outcomes(failed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*skipped, which counts as a failure here: *only runs nowhere*",
            "*skipped, which counts as a failure here: *no server here*",
        ]
    )


def test_a_module_level_skip_is_a_collection_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_absent='import pytest\npytest.importorskip("no_such_module")\n')
    result = pytester.runpytest("-p", "tests.no_skips")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped, which counts as a failure here: *no_such_module*"])
