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


def _settings_in_subprocess(tmp_path, extra_env: dict[str, str], expression: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "true",
        "COHORTSYNC_VAR_DIR": str(tmp_path),
        **extra_env,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import os; os.environ['DJANGO_SETTINGS_MODULE']="
         "'cohortsync_site.settings'; from django.conf import settings; print(" + expression + ")"],
        env=env, capture_output=True, text=True, cwd=settings.BASE_DIR, check=True,
    )
    return result.stdout.strip()


def test_redis_url_switches_broker_and_cache_to_redis(tmp_path):
    expression = "settings.Q_CLUSTER.get('redis'), 'orm' in settings.Q_CLUSTER, settings.CACHES['default']['BACKEND']"
    with_redis = _settings_in_subprocess(tmp_path, {"REDIS_URL": "redis://127.0.0.1:6379/3"}, expression)
    assert with_redis == "redis://127.0.0.1:6379/3 False django.core.cache.backends.redis.RedisCache"
    # Installations sharing a Redis server keep their queues and cache keys apart by name.
    named = _settings_in_subprocess(tmp_path, {"REDIS_URL": "redis://127.0.0.1:6379/3", "TASK_QUEUE_NAME": "acme"},
                                    "settings.Q_CLUSTER['name'], settings.CACHES['default']['KEY_PREFIX']")
    assert named == "acme acme"
    without = _settings_in_subprocess(tmp_path, {}, expression)
    assert without == "None True django.core.cache.backends.db.DatabaseCache"


def test_sqlite_default_uses_wal_and_immediate_transactions(tmp_path):
    options = _settings_in_subprocess(tmp_path, {}, "settings.DATABASES['default']['OPTIONS']")
    assert "'transaction_mode': 'IMMEDIATE'" in options
    assert "journal_mode=WAL" in options


def test_api_budgets_live_in_redis_with_redis_url_and_in_the_database_without(tmp_path):
    expression = "settings.COHORTSYNC_API_BUDGET_STORE or ('redis' if settings.REDIS_URL else 'database')"
    assert _settings_in_subprocess(tmp_path, {"REDIS_URL": "redis://127.0.0.1:6379/3"}, expression) == "redis"
    assert _settings_in_subprocess(tmp_path, {}, expression) == "database"


def test_a_bad_api_budget_store_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "COHORTSYNC_VAR_DIR": str(tmp_path),
           "COHORTSYNC_API_BUDGET_STORE": "memcached"}
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']="
         "'cohortsync_site.settings'; django.setup()"],
        env=env, capture_output=True, text=True, cwd=settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "COHORTSYNC_API_BUDGET_STORE must be database, redis, memory or empty, not 'memcached'" in result.stderr
