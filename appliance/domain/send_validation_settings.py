"""SendGrid's rules for ``mail_settings`` and ``tracking_settings`` of a mail/send body.

Part of :mod:`appliance.domain.send_validation`, split off to keep each module
small. Every setting is an object whose ``enable`` must be a JSON boolean
(SendGrid refuses ``"true"``); string-valued options must be strings. ``bcc``
and ``spam_check`` are accepted because the official helpers send them; the
appliance does not act on them.
"""

from __future__ import annotations

from appliance.domain import send_errors as m
from appliance.domain.email_address import is_valid_address, normalize_address
from appliance.domain.send_errors import RuleChecker, json_object
from appliance.domain.send_request import (
    BccSetting,
    ClickTracking,
    Footer,
    Ganalytics,
    MailSettings,
    OpenTracking,
    SpamCheck,
    SubscriptionTracking,
    TrackingSettings,
)

SPAM_THRESHOLD = range(1, 11)
_BYPASSES = (
    "bypass_list_management",
    "bypass_spam_management",
    "bypass_bounce_management",
    "bypass_unsubscribe_management",
)


class SettingsChecker(RuleChecker):
    def mail_settings(self, raw: object) -> MailSettings:
        settings = json_object(raw) or {}
        bypass = {
            name: self.enable(settings.get(name), f"mail_settings.{name}") for name in _BYPASSES
        }
        return MailSettings(
            sandbox_mode=self.enable(settings.get("sandbox_mode"), "mail_settings.sandbox_mode"),
            bypass_list_management=bypass["bypass_list_management"],
            bypass_spam_management=bypass["bypass_spam_management"],
            bypass_bounce_management=bypass["bypass_bounce_management"],
            bypass_unsubscribe_management=bypass["bypass_unsubscribe_management"],
            footer=self.footer(settings.get("footer")),
            bcc=self.bcc(settings.get("bcc")),
            spam_check=self.spam_check(settings.get("spam_check")),
        )

    def tracking_settings(self, raw: object) -> TrackingSettings:
        settings = json_object(raw) or {}
        return TrackingSettings(
            click_tracking=self.click_tracking(settings.get("click_tracking")),
            open_tracking=self.open_tracking(settings.get("open_tracking")),
            subscription_tracking=self.subscription_tracking(settings.get("subscription_tracking")),
            ganalytics=self.ganalytics(settings.get("ganalytics")),
        )

    # the pieces every setting is made of

    def enable(self, raw: object, path: str) -> bool:
        """The ``enable`` of the setting object ``raw`` at ``path``; False if absent."""
        setting = json_object(raw)
        if setting is None:
            return False
        return self.boolean(
            setting.get("enable"),
            f"{path}.enable",
            m.SETTING_ENABLE_NOT_BOOL[path.rpartition(".")[2]],
        )

    def boolean(self, raw: object, field: str, message: str) -> bool:
        if raw is None:
            return False
        if not isinstance(raw, bool):
            self.error(message, field, f"message.{field}")
            return False
        return raw

    def text(self, setting: dict[str, object], path: str, key: str) -> str | None:
        raw = setting.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            field = f"{path}.{key}"
            self.error(m.SETTING_NOT_STRING[field], field, f"message.{field}")
            return None
        return raw

    # mail_settings

    def footer(self, raw: object) -> Footer | None:
        path = "mail_settings.footer"
        setting = json_object(raw)
        if setting is None:
            return None
        return Footer(
            enable=self.enable(setting, path),
            text=self.text(setting, path, "text"),
            html=self.text(setting, path, "html"),
        )

    def bcc(self, raw: object) -> BccSetting | None:
        path = "mail_settings.bcc"
        setting = json_object(raw)
        if setting is None:
            return None
        enable = self.enable(setting, path)
        email = setting.get("email")
        field, anchor = f"{path}.email", f"message.{path}.email"
        if email is None or email == "":
            if enable:
                self.error(m.BCC_EMAIL_MISSING, field, anchor)
            return BccSetting(enable, None)
        if not isinstance(email, str) or not is_valid_address(email):
            self.error(m.BCC_EMAIL_INVALID, field, anchor)
            return BccSetting(enable, None)
        return BccSetting(enable, normalize_address(email))

    def spam_check(self, raw: object) -> SpamCheck | None:
        path = "mail_settings.spam_check"
        setting = json_object(raw)
        if setting is None:
            return None
        enable = self.enable(setting, path)
        threshold = setting.get("threshold")
        field = f"{path}.threshold"
        if threshold is not None and (
            not isinstance(threshold, int)
            or isinstance(threshold, bool)
            or threshold not in SPAM_THRESHOLD
        ):
            self.error(m.SPAM_CHECK_THRESHOLD, field, f"message.{field}")
            threshold = None
        url = setting.get("post_to_url")
        field = f"{path}.post_to_url"
        if url is not None and not isinstance(url, str):
            self.error(m.SPAM_CHECK_URL_NOT_STRING, field, f"message.{field}")
            url = None
        elif isinstance(url, str) and not url.startswith(("http://", "https://")):
            self.error(m.SPAM_CHECK_URL_SCHEME, field, f"message.{field}")
            url = None
        return SpamCheck(enable, threshold, url)

    # tracking_settings

    def click_tracking(self, raw: object) -> ClickTracking | None:
        path = "tracking_settings.click_tracking"
        setting = json_object(raw)
        if setting is None:
            return None
        return ClickTracking(
            enable=self.enable(setting, path),
            enable_text=self.boolean(
                setting.get("enable_text"), f"{path}.enable_text", m.CLICK_TRACKING_ENABLE_TEXT
            ),
        )

    def open_tracking(self, raw: object) -> OpenTracking | None:
        path = "tracking_settings.open_tracking"
        setting = json_object(raw)
        if setting is None:
            return None
        return OpenTracking(
            enable=self.enable(setting, path),
            substitution_tag=self.text(setting, path, "substitution_tag"),
        )

    def subscription_tracking(self, raw: object) -> SubscriptionTracking | None:
        path = "tracking_settings.subscription_tracking"
        setting = json_object(raw)
        if setting is None:
            return None
        return SubscriptionTracking(
            enable=self.enable(setting, path),
            text=self.text(setting, path, "text"),
            html=self.text(setting, path, "html"),
            substitution_tag=self.text(setting, path, "substitution_tag"),
        )

    def ganalytics(self, raw: object) -> Ganalytics | None:
        path = "tracking_settings.ganalytics"
        setting = json_object(raw)
        if setting is None:
            return None
        return Ganalytics(
            enable=self.enable(setting, path),
            utm_source=self.text(setting, path, "utm_source"),
            utm_medium=self.text(setting, path, "utm_medium"),
            utm_term=self.text(setting, path, "utm_term"),
            utm_content=self.text(setting, path, "utm_content"),
            utm_campaign=self.text(setting, path, "utm_campaign"),
        )
