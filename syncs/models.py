from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from cohorts.models import Cohort, Profile
from destinations.models import Destination

# The profile's own id rather than one of its properties.
DISTINCT_ID_IDENTITY = "$distinct_id"
# How the id may be written as an identity property: the seed documents write it bare.
DISTINCT_ID_IDENTITIES = (DISTINCT_ID_IDENTITY, "distinct_id")
# Fields that decide where and under which key users were written: once the destination has
# acknowledged users, changing them would orphan those users (their old field never cleared).
FROZEN_SYNC_FIELDS = ("destination", "target_field", "identity_property")


class Sync(models.Model):
    """Keep cohort X in field F of destination D, once or on a schedule."""

    class Mode(models.TextChoices):
        ONE_TIME = "one_time", "One-time export"
        DYNAMIC = "dynamic", "Dynamic sync"

    name = models.CharField(max_length=200, unique=True)
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="syncs")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="syncs")
    # What the field means, and each kind's default identity and interval, are in the kinds'
    # specs (destinations.kinds; the sync form's help texts are made from them).
    target_field = models.CharField(
        max_length=200, help_text="Where membership is written in the destination."
    )
    identity_property = models.CharField(
        max_length=200,
        default="$email",
        help_text="Profile property whose value identifies the user in the destination. "
        f"Use {DISTINCT_ID_IDENTITY} for the profile's distinct id.",
    )
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.DYNAMIC)
    interval_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Dynamic syncs only. Empty uses the destination's default.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Disabled dynamic syncs are not scheduled."
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per-sync options (syncs.options): removal_guard_ratio, and the options of "
        "the destination's kind.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "target_field"], name="unique_target_field_per_destination"
            )
        ]
        permissions = [("run_sync", "Can export and sync cohorts")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.mode == Sync.Mode.ONE_TIME and self.interval_minutes:
            errors["interval_minutes"] = (
                "A one-time export runs once and has no schedule: clear the interval, or choose "
                "“Dynamic sync” to export on a schedule."
            )
        owner_message = self._field_owner_message()
        if owner_message:
            errors["target_field"] = owner_message
        errors.update(self._frozen_messages())
        if errors:
            raise ValidationError(errors)

    def _frozen_messages(self) -> dict[str, str]:
        if self.pk is None:
            return {}
        # Local import: selectors import this module.
        from syncs.selectors import sync_frozen_changes

        return {
            name: (
                f"The {Sync._meta.get_field(name).verbose_name} of '{self.name}' can no "
                "longer be changed: the destination has acknowledged users written "
                "under the current value, and they would never be cleared. Create a "
                "new sync instead (and disable this one)."
            )
            for name in sync_frozen_changes(self)
        }

    def _field_owner_message(self) -> str:
        """One field per sync per destination account: checked when the sync is new or its
        destination or field changes (an old clash is the newcomer's to fix)."""
        if self.destination_id is None or not self.target_field:
            return ""
        if self.pk is not None:
            stored = Sync.objects.filter(pk=self.pk).values("destination_id", "target_field").first()
            if stored == {"destination_id": self.destination_id, "target_field": self.target_field}:
                return ""
        # Local import: syncs.targets imports this module.
        from syncs.targets import field_taken_message, sync_field_owner

        owner = sync_field_owner(
            destination=self.destination,
            destination_id=self.destination_id,
            target_field=self.target_field,
            exclude_sync_ids=[self.pk],
        )
        if owner is None:
            return ""
        return field_taken_message(
            field=self.target_field.strip(),
            destination=self.destination,
            destination_name=self.destination.name,
            owner=owner,
        )

    @property
    def effective_interval_minutes(self) -> int:
        return self.interval_minutes or self.destination.default_interval_minutes


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partially failed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped (previous run still active)"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_RUN_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.PARTIAL,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.SKIPPED,
)


class SyncRun(models.Model):
    """One execution of a sync, with counts per operation and outcome."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (admin)"
        SCHEDULE = "schedule", "Schedule"
        RETRY = "retry", "Retry of failed users"
        CLI = "cli", "Command line"

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    is_dry_run = models.BooleanField(default=False)
    is_full_resync = models.BooleanField(default=False)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    retry_non_retriable = models.BooleanField(
        default=False,
        help_text="A retry that also re-sends the users whose failure the destination marked "
        "as not worth retrying (by default a retry re-sends only retriable failures).",
    )

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    worker = models.JSONField(
        default=dict,
        blank=True,
        help_text="The process that claimed the run (host, pid, start time): a run whose "
        "process is gone is reaped at once instead of after its heartbeat goes stale.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    planned_adds = models.PositiveIntegerField(default=0)
    attempted_adds = models.PositiveIntegerField(default=0)
    succeeded_adds = models.PositiveIntegerField(default=0)
    failed_adds = models.PositiveIntegerField(default=0)
    planned_removes = models.PositiveIntegerField(default=0)
    attempted_removes = models.PositiveIntegerField(default=0)
    succeeded_removes = models.PositiveIntegerField(default=0)
    failed_removes = models.PositiveIntegerField(default=0)
    skipped_users = models.PositiveIntegerField(
        default=0, help_text="Members without the identity property (or with an invalid one)."
    )
    api_calls = models.PositiveIntegerField(default=0)
    acknowledged_members = models.IntegerField(
        null=True,
        blank=True,
        help_text="Members of the sync the destination had acknowledged when the run ended (for "
        "a run whose worker was lost: when it was planned). Empty when the run ended before "
        "planning.",
    )
    skipped_ticks = models.PositiveIntegerField(
        default=0,
        help_text="Scheduled runs skipped while this run awaited approval (one counter, not a "
        "skipped run per tick).",
    )

    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    plan_sample = models.JSONField(
        default=dict, blank=True, help_text="Dry runs and guarded runs: a sample of the plan."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            # At most one queued or running run per sync, enforced by the database.
            models.UniqueConstraint(
                fields=["sync"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_run_per_sync",
            )
        ]
        indexes = [models.Index(fields=["sync", "-created_at"])]
        permissions = [
            ("manage_run", "Can cancel, retry and reject runs"),
            ("approve_run", "Can approve runs held by the mass-removal guard"),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.sync}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class SyncFailure(models.Model):
    """One user that failed, or was skipped, in one run, and why."""

    class Operation(models.TextChoices):
        ADD = "add", "Add (set member)"
        REMOVE = "remove", "Remove (set not member)"
        SKIP = "skip", "Skipped before sending"

    # Indexed with the id below: a run's failures are read in id order, a page at a time.
    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="failures", db_index=False)
    profile = models.ForeignKey(
        Profile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    distinct_id = models.CharField(max_length=255, blank=True, default="")
    identity_value = models.CharField(max_length=512, blank=True, default="")
    operation = models.CharField(max_length=8, choices=Operation.choices)
    code = models.CharField(max_length=64)
    message = models.TextField()
    retriable = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # A run's failures in id order (its page, its CSV, pruning); searched by exact
        # identity, distinct id or code, in one run or across runs.
        indexes = [
            models.Index(fields=["run", "id"]),
            models.Index(fields=["identity_value", "run"]),
            models.Index(fields=["distinct_id"]),
            models.Index(fields=["code"]),
        ]

    def __str__(self) -> str:
        return f"{self.identity_value or self.distinct_id}: {self.code}"


class RunPlanChunk(models.Model):
    """Part of the plan a run made: up to ledger.PLAN_RECORD_ROWS users it planned to add
    (or to remove), packed in one row as JSON arrays, so the run's CSV can list every one.

    Packed rather than a row per user: a first export of a million members is 100 rows of
    ~250 KB that PostgreSQL compresses, written by one INSERT ... SELECT from the staging
    tables (a row per user cost 2.5x the time and 12x the space). Pruned with its run.
    """

    # No index of its own: the unique (run, first_seq, is_member) index leads with it.
    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="plan_chunks", db_index=False)
    # The plan's order: the first change of the chunk in the run's staged changes.
    first_seq = models.BigIntegerField()
    is_member = models.BooleanField(help_text="True: users to add; False: users to remove.")
    users = models.PositiveIntegerField()
    identities = models.TextField(help_text="JSON array of the identities, in no particular order.")
    profile_ids = models.TextField(
        help_text="JSON array of the profile id of each identity, in the same order (null for "
        "users to remove: they are no longer members)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "first_seq", "is_member"], name="unique_run_plan_chunk")
        ]

    def __str__(self) -> str:
        return f"Run #{self.run_id}: {self.users} to {'add' if self.is_member else 'remove'}"


class SyncedMember(models.Model):
    """What the destination last acknowledged for one identity: the state diffs run against.

    Only acknowledged outcomes are written here; a failed user keeps its previous state and
    is planned again on the next run.
    """

    # No foreign key in the database: checking it for every acknowledged row cost 40 % of
    # writing them (0.65 s per 265,000 at commit). Django deletes the state with its sync;
    # rows a run writes while its sync is being deleted are removed by the daily prune.
    # No index of its own either: the unique (sync, identity) and (sync, is_member) indexes
    # lead with it, and a third index cost 8 % of every write.
    sync = models.ForeignKey(
        Sync, on_delete=models.CASCADE, related_name="synced_members", db_constraint=False, db_index=False
    )
    identity_value = models.CharField(max_length=512)
    is_member = models.BooleanField()
    acknowledged_at = models.DateTimeField()
    # The destination's own id for this identity (a Marketo lead id), when its connector
    # reports one (Connector.uses_remote_ids); handed back with the identity's later changes.
    # A database default: the ledger's set-based writes leave it out.
    remote_id = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sync", "identity_value"], name="unique_synced_identity"
            )
        ]
        indexes = [models.Index(fields=["sync", "is_member"])]

    def __str__(self) -> str:
        return f"{self.identity_value} = {self.is_member}"


@receiver(post_delete, sender=Sync, dispatch_uid="syncs.sync_deleted_unschedule")
def _sync_deleted_unschedule(sender: type[Sync], instance: Sync, **kwargs: object) -> None:
    # However a sync is deleted (admin, shell, apply), its schedule must not outlive it.
    from syncs.schedules import schedule_delete_for_sync

    schedule_delete_for_sync(sync_id=instance.pk)
