"""The `sfmc_contacts` kind: one text attribute per cohort in a contact attribute set."""
