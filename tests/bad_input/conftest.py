"""Fixtures the bad-input suite borrows from the packages it attacks."""

from tests.sources.conftest import (  # noqa: F401 (fixtures)
    app_db,
    mariadb_app_db,
    postgres_app_db,
    sqlite_app_db,
)
