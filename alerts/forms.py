"""The alert rule form: events as checkboxes, recipients as text, a write-only webhook URL."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from alerts.models import AlertEvent, AlertRule
from alerts.webhooks import WebhookUrlRefused, webhook_url_check
from destinations.models import Destination


def recipients_parse(raw: str) -> list[str]:
    """Addresses separated by commas, semicolons or new lines; ValidationError names the bad one."""
    addresses = [part.strip() for part in raw.replace(";", ",").replace("\n", ",").split(",") if part.strip()]
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"“{address}” is not an email address.") from None
    return list(dict.fromkeys(addresses))


class AlertRuleForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=AlertEvent.choices, widget=forms.CheckboxSelectMultiple, label="Notify on"
    )
    new_webhook_url = forms.CharField(
        label="Webhook URL",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text="Write-only: a webhook URL is a secret (Slack's carries its credential) and is never "
        "shown again. Leave empty to keep the stored one. https only, unless the host is listed in "
        "COHORTSYNC_ALLOWED_ALERT_HOSTS.",
    )
    recipients = forms.CharField(
        label="Email recipients",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses separated by commas or new lines.",
    )

    class Meta:
        model = AlertRule
        fields = [
            "name", "enabled", "channel", "events", "webhook_format", "syncs", "destinations",
            "min_failed_share", "stale_after_intervals",
        ]
        labels = {"webhook_format": "Webhook format"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Listing destinations must never decrypt their secrets.
        self.fields["destinations"].queryset = Destination.objects.defer("client_secret").order_by("name")
        if self.instance.pk:
            self.fields["recipients"].initial = ", ".join(self.instance.email_to or [])

    def clean_recipients(self) -> list[str]:
        return recipients_parse(self.cleaned_data.get("recipients") or "")

    def clean_min_failed_share(self) -> float | None:
        share = self.cleaned_data.get("min_failed_share")
        if share is not None and not 0 <= share <= 1:
            raise ValidationError("Enter a share from 0 to 1, e.g. 0.01 for 1 %.")
        return share

    def clean_stale_after_intervals(self) -> int:
        intervals = self.cleaned_data.get("stale_after_intervals")
        if not intervals:
            raise ValidationError("Enter a whole number of intervals, 1 or more.")
        return intervals

    def clean_new_webhook_url(self) -> str:
        url = self.cleaned_data.get("new_webhook_url") or ""
        if url:
            try:
                webhook_url_check(url)
            except WebhookUrlRefused as exc:
                # The message names the host at most, never the URL.
                raise ValidationError(f"The webhook URL {exc.message}") from None
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        channel = cleaned.get("channel")
        if channel == AlertRule.Channel.WEBHOOK:
            has_url = bool(cleaned.get("new_webhook_url")) or (
                self.instance.pk is not None and self.instance.channel == AlertRule.Channel.WEBHOOK
                and AlertRule.objects.filter(pk=self.instance.pk).exclude(webhook_url="").exists()
            )
            if not has_url and "new_webhook_url" not in self.errors:
                self.add_error("new_webhook_url", "Enter the webhook URL.")
            if not cleaned.get("webhook_format"):
                cleaned["webhook_format"] = AlertRule.WebhookFormat.JSON
        elif channel == AlertRule.Channel.EMAIL and not cleaned.get("recipients") and "recipients" not in self.errors:
            self.add_error("recipients", "Enter at least one email address.")
        return cleaned

    def save(self, commit: bool = True) -> AlertRule:
        rule = super().save(commit=False)
        if rule.channel == AlertRule.Channel.EMAIL:
            rule.email_to = self.cleaned_data["recipients"]
            rule.webhook_url = ""
        else:
            rule.email_to = []
            if self.cleaned_data.get("new_webhook_url"):
                rule.webhook_url = self.cleaned_data["new_webhook_url"]
        if commit:
            rule.save()
            self.save_m2m()
        return rule
