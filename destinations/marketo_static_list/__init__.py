"""The `marketo_static_list` kind: a cohort is one Marketo static list (members in it,
leavers out), leads matched by email. It shares the Marketo client, options and limits with
the `marketo` kind (destinations.marketo)."""
