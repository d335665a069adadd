# Kind choices come from the registry (destinations.kinds): a new kind needs no migration.

import destinations.kinds
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('destinations', '0003_connection_summary'),
    ]

    operations = [
        migrations.AlterField(
            model_name='destination',
            name='account_id',
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name='destination',
            name='attribute_set',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AlterField(
            model_name='destination',
            name='auth_base_url',
            field=models.URLField(blank=True),
        ),
        migrations.AlterField(
            model_name='destination',
            name='base_url',
            field=models.URLField(blank=True),
        ),
        migrations.AlterField(
            model_name='destination',
            name='data_extension_key',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name='destination',
            name='key_column',
            field=models.CharField(blank=True, default='', max_length=128),
        ),
        migrations.AlterField(
            model_name='destination',
            name='kind',
            field=models.CharField(choices=destinations.kinds.kind_choices, max_length=32),
        ),
        migrations.AlterField(
            model_name='destination',
            name='subdomain',
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
