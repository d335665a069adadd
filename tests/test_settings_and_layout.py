import subprocess
import sys

from django.conf import settings
from django.db import connection


def test_production_refuses_to_start_without_keys(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "false", "COHORTSYNC_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']="
         "'cohortsync_site.settings'; django.setup()"],
        env=env, capture_output=True, text=True, cwd=settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "SECRET_KEY and FIELD_ENCRYPTION_KEYS" in result.stderr


def test_tasks_run_synchronously_in_tests():
    assert settings.Q_CLUSTER["sync"] is True
    assert settings.Q_CLUSTER["retry"] > settings.Q_CLUSTER["timeout"]
    assert settings.Q_CLUSTER["catch_up"] is False


def test_database_backend_is_reachable(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
