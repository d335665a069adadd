"""Test settings: tasks run synchronously, fast hashing, an in-process cache."""

import os
import tempfile

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key")
# Two keys so rotation is exercised: the first encrypts, both decrypt.
os.environ.setdefault(
    "FIELD_ENCRYPTION_KEYS",
    "dGVzdC1rZXktb25lLXRlc3Qta2V5LW9uZS10ZXN0LWs=,dGVzdC1rZXktdHdvLXRlc3Qta2V5LXR3by10ZXN0LWs=",
)

from pathlib import Path  # noqa: E402

from .settings import *  # noqa: E402,F403
from .settings import Q_CLUSTER  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
Q_CLUSTER.pop("redis", None)
Q_CLUSTER["orm"] = "default"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# The API budgets of one test process live in memory (tests reset them): a database budget
# would be written by the send loop's threads inside each test's transaction. The budget
# tests use the database and Redis stores themselves, across real processes.
COHORTSYNC_API_BUDGET_STORE = os.environ.get("COHORTSYNC_API_BUDGET_STORE", "memory")
# The sandbox emulators listen on loopback during tests.
COHORTSYNC_ALLOWED_API_HOSTS = ["127.0.0.1", "localhost"]
# Alert webhooks go to a listener on loopback during tests.
COHORTSYNC_ALLOWED_ALERT_HOSTS = ["127.0.0.1", "localhost"]
COHORTSYNC_BASE_URL = "https://cohortsync.example.com"
COHORTSYNC_EMAIL_CONFIGURED = True
# seed_demo's application database: never the developer's own demo file.
COHORTSYNC_DEMO_APP_DB = Path(tempfile.mkdtemp(prefix="cohortsync-test-")) / "demo-app.sqlite3"
