"""Browser tests: Playwright for Python driving Debian's Chromium against the live server.

No browser is downloaded: `chromium` must be on PATH (`.ci/run` installs Debian's package;
on another machine, `apt-get install chromium`). Failing tests leave a screenshot under
var/browser-failures/ (pytest-playwright's --screenshot/--output, set in pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.factories import UserFactory

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between page actions are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "browser-test-password"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(
            "The browser tests need Debian's Chromium: run `apt-get install chromium` "
            "(.ci/run does this). Playwright's own browser download is not used.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # The narrowest screen the admin is held to (issue: lists fit 1280 px).
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def log_in(live_server: Any, page: Page) -> Callable[..., Page]:
    """Log a new staff user in through the admin's login form, as a person would."""

    def _log_in(*, superuser: bool = True, user: Any = None) -> Page:
        if user is None:
            user = UserFactory(is_staff=True, is_superuser=superuser)
        user.set_password(PASSWORD)
        user.save()
        page.goto(f"{live_server.url}/admin/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("link", name="Log out").or_(
            page.get_by_role("button", name="Log out"))).to_be_visible()
        return page

    return _log_in
