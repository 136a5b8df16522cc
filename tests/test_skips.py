"""A test skipped for a missing tool says why, and in CI it fails instead of hiding the gap."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

#: The suite's own hook, as the inner run's conftest.
CONFTEST = "from tests.conftest import pytest_runtest_setup  # noqa: F401\n"

INNER = """
import pytest

from tests.conftest import missing_dependency


@pytest.mark.needs("callserver-no-such-program")
def test_needs_a_program():
    pass


def test_needs_a_capability():
    missing_dependency("no tmpfs here")


@pytest.mark.needs("sh")
def test_has_its_program():
    pass
"""


@pytest.mark.parametrize("ci", [False, True])
def test_missing_dependencies_skip_with_a_reason_or_fail_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool
) -> None:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    needs(*programs): programs on PATH\n"
    )
    result = pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    if ci:
        # Failing in setup (the marker) is an error, in the test body a failure: both fail CI.
        result.assert_outcomes(passed=1, failed=1, errors=1)
        result.stdout.fnmatch_lines(["*missing dependency in CI: callserver-no-such-program*"])
        result.stdout.fnmatch_lines(["*missing dependency in CI: no tmpfs here*"])
    else:
        result.assert_outcomes(passed=1, skipped=2)
        # -rs prints each reason in the summary.
        result.stdout.fnmatch_lines(["SKIPPED*missing dependency: callserver-no-such-program*"])
        result.stdout.fnmatch_lines(["SKIPPED*missing dependency: no tmpfs here*"])
