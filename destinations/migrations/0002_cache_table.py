from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # Destination tokens are cached in the database cache unless Redis or CACHE_URL is set;
    # creating its table here keeps `migrate` the only setup step.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("destinations", "0001_initial")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
