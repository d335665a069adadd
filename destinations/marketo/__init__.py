"""Marketo destination: one Boolean custom lead field per cohort, leads matched by email."""
