"""Destination services: connection checks, target fields, secret rotation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from destinations.base import ConnectionReport, FieldInfo, SyncTarget, TargetCheck, TargetStatus
from destinations.encryption import (
    SecretDecryptionError,
    is_encrypted_with_current_key,
    reencrypt_secret,
)
from destinations.errors import DestinationError
from destinations.http import interactive_calls
from destinations.models import Destination
from destinations.registry import connector_for
from destinations.scrubbing import scrub

logger = logging.getLogger(__name__)

# Stored check results are shown in lists; a connector's message is never longer than this.
MAX_STORED_MESSAGE_LENGTH = 1000


def _redact(message: str, secrets: Iterable[str]) -> str:
    """Last line of defence: a connector message must never carry the credentials (nor
    any access token: destinations.scrubbing)."""
    return scrub(message, secrets)[:MAX_STORED_MESSAGE_LENGTH]


def _check(destination: Destination) -> tuple[ConnectionReport, list[str]]:
    """Run the connector's check; returns the report and the secrets to redact."""
    secrets: list[str] = []
    try:
        secrets = [destination.client_secret]
        report = connector_for(destination).check_connection()
    except SecretDecryptionError as exc:
        return ConnectionReport(ok=False, summary=str(exc)), secrets
    except DestinationError as exc:
        return ConnectionReport(ok=False, summary=str(exc)), secrets
    except Exception as exc:
        # A bug, not a settings problem: the log gets the traceback, the user a pointer.
        logger.exception("Connection check of destination %s crashed", destination.pk)
        return (
            ConnectionReport(
                ok=False,
                summary=f"The connection check failed unexpectedly ({type(exc).__name__}). "
                "The server log has the details.",
            ),
            secrets,
        )
    return report, secrets


def destination_check_connection(*, destination: Destination) -> ConnectionReport:
    """Log in to the destination, read what syncs need, and store the outcome on the row."""
    report, secrets = _check(destination)
    summary = _redact(report.summary, secrets)
    report = ConnectionReport(ok=report.ok, summary=summary, fields=tuple(report.fields))
    values = {
        "connection_checked_at": timezone.now(),
        "is_connected": report.ok,
        "connection_error": "" if report.ok else summary,
        "connection_summary": summary if report.ok else "",
    }
    # update() rather than save(): a check must not overwrite settings edited meanwhile,
    # nor re-encrypt the secret it just read.
    Destination.objects.filter(pk=destination.pk).update(**values)
    for name, value in values.items():
        setattr(destination, name, value)
    return report


def destination_target_fields(*, destination: Destination) -> list[FieldInfo]:
    """The fields a sync may write to, or [] when the destination cannot be read right now
    (within COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS: a person is waiting for the list)."""
    try:
        with interactive_calls():
            return list(connector_for(destination).list_target_fields())
    except (DestinationError, SecretDecryptionError) as exc:
        logger.info("Target fields of destination %s unavailable: %s", destination.pk, exc.__class__.__name__)
        return []
    except Exception:
        logger.exception("Listing target fields of destination %s crashed", destination.pk)
        return []


def destination_targets_check(
    *, destination: Destination, targets: Sequence[SyncTarget]
) -> list[TargetCheck]:
    """Ask the destination, while a person waits, whether each target field exists and can
    hold a membership (one result per target, nothing created). Every call is tried once
    and all of them end within COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS. When the destination
    cannot be asked (network, credentials, a missing data extension), every result is
    UNCHECKED with the reason: the run checks the field again before sending anything."""
    try:
        with interactive_calls():
            return list(connector_for(destination).check_targets(targets))
    except (DestinationError, SecretDecryptionError) as exc:
        reason = _redact(str(exc), _secret_of(destination))
    except Exception:
        logger.exception("Checking target fields of destination %s crashed", destination.pk)
        reason = "the check failed unexpectedly; the server log has the details."
    return [
        TargetCheck(
            TargetStatus.UNCHECKED,
            f"Could not check '{target.field}' against {destination.name}: {reason}",
        )
        for target in targets
    ]


def _secret_of(destination: Destination) -> list[str]:
    try:
        return [destination.client_secret]
    except SecretDecryptionError:
        return []


@dataclass
class SecretRotationReport:
    reencrypted: int = 0
    already_current: int = 0
    empty: int = 0
    # Names of destinations whose secret no configured key can decrypt.
    undecryptable: list[str] = field(default_factory=list)
    # Rows whose secret changed while rotating; the new value is already current.
    changed_meanwhile: int = 0


def destination_secrets_rotate() -> SecretRotationReport:
    """Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

    Works on the raw column so that a secret nobody can decrypt is reported by destination
    name instead of aborting the whole rotation. Safe to run repeatedly: secrets already
    encrypted with the first key are left untouched.
    """
    meta = Destination._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    column = quote(meta.get_field("client_secret").column)
    pk_column = quote(meta.pk.column)
    name_column = quote(meta.get_field("name").column)

    report = SecretRotationReport()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk_column}, {name_column}, {column} FROM {table} ORDER BY {pk_column}")
        rows = cursor.fetchall()

    for pk, name, stored in rows:
        if not stored:
            report.empty += 1
            continue
        if is_encrypted_with_current_key(stored):
            report.already_current += 1
            continue
        try:
            rotated = reencrypt_secret(stored)
        except SecretDecryptionError:
            report.undecryptable.append(name)
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            # Conditional on the value read: a secret re-entered in the admin meanwhile wins.
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s AND {column} = %s",
                [rotated, pk, stored],
            )
            if cursor.rowcount == 1:
                report.reencrypted += 1
            else:
                report.changed_meanwhile += 1
    return report
