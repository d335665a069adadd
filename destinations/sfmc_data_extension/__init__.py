"""The `sfmc_data_extension` kind: one Boolean column per cohort in one data extension."""
