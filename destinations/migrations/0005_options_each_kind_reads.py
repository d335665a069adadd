"""Stored options that the kinds' bounds now refuse, made what they already meant.

Options are now parsed strictly where they are used (a value a kind cannot take fails the
run with a settings error instead of being silently changed). Two stored values used to be
accepted and then ignored or clamped by the connector: an SFMC data extension's
rowset_batch_size above 50 (sent as 50), and an SFMC contacts destination's async_threshold
and async_batch_size (never read). They become exactly that, so no run changes behaviour.
"""

from django.db import migrations

ROWSET_MAX_BATCH = 50
CONTACTS_UNREAD = ("async_threshold", "async_batch_size")


def options_as_they_were_used(apps, schema_editor):
    destination_model = apps.get_model("destinations", "Destination")
    rows = destination_model.objects.filter(kind__in=("sfmc_data_extension", "sfmc_contacts"))
    for pk, kind, options in rows.values_list("pk", "kind", "options"):
        if not isinstance(options, dict):
            continue
        used = dict(options)
        size = used.get("rowset_batch_size")
        if kind == "sfmc_data_extension" and isinstance(size, int | float) and not isinstance(size, bool) \
                and size > ROWSET_MAX_BATCH:
            used["rowset_batch_size"] = ROWSET_MAX_BATCH
        if kind == "sfmc_contacts":
            for key in CONTACTS_UNREAD:
                used.pop(key, None)
        if used != options:
            destination_model.objects.filter(pk=pk).update(options=used)


class Migration(migrations.Migration):
    dependencies = [("destinations", "0004_kind_registry_choices")]

    operations = [migrations.RunPython(options_as_they_were_used, migrations.RunPython.noop)]
