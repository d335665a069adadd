"""The production files of docs/deployment.md stay true: the documented settings pass
`check --deploy`, and every process definition starts something that exists."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import get_commands

ROOT = Path(settings.BASE_DIR)
DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "cohortsync.env.example"


def _documented_settings(*, generate_secrets: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    if generate_secrets:
        # What the comments above each secret tell the operator to run.
        values["SECRET_KEY"] = secrets.token_urlsafe(50)
        values["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    return values


def _check_deploy(tmp_path: Path, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # DEBUG is off by default; it is set here only so a developer's .env cannot turn it on.
    env = {"PATH": "/usr/bin:/bin", "COHORTSYNC_VAR_DIR": str(tmp_path), "DEBUG": "false", **values}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_settings(tmp_path) -> None:
    result = _check_deploy(tmp_path, _documented_settings(generate_secrets=True))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout + result.stderr


def test_check_deploy_fails_on_the_placeholder_secret(tmp_path) -> None:
    """The same check catches a secret left as in the example (so the test above can fail)."""
    values = _documented_settings(generate_secrets=True)
    values["SECRET_KEY"] = _documented_settings(generate_secrets=False)["SECRET_KEY"]

    result = _check_deploy(tmp_path, values)

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def _manage_commands(text: str) -> list[str]:
    return re.findall(r"manage\.py (\w+)", text)


def test_every_process_definition_runs_an_existing_command() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    procfile = (DEPLOY / "Procfile").read_text()
    texts = [procfile, *(unit.read_text() for unit in units)]
    commands = {name for text in texts for name in _manage_commands(text)}

    assert {"qcluster", "migrate", "setup_schedules"} <= commands
    assert commands <= set(get_commands())
    for text in texts:
        for config in re.findall(r"gunicorn -c (\S+)", text):
            assert (ROOT / config).is_file(), config
        for env_file in re.findall(r"EnvironmentFile=(\S+)", text):
            assert Path(env_file).name == "cohortsync.env"
    assert {unit.name for unit in units} == {"cohortsync-web.service", "cohortsync-qcluster@.service"}


def test_the_gunicorn_configuration_loads_and_serves_the_project(tmp_path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py", "--check-config",
         "--print-config"],
        env={"PATH": "/usr/bin:/bin", "COHORTSYNC_VAR_DIR": str(tmp_path), "DEBUG": "true",
             "WEB_BIND": "127.0.0.1:9999"},
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"wsgi_app\s*=\s*cohortsync_site\.wsgi:application", result.stdout)
    assert re.search(r"bind\s*=\s*\['127\.0\.0\.1:9999'\]", result.stdout)
