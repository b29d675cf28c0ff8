"""The built-in channels, registered through the same hook as third-party ones."""

from __future__ import annotations

from ..config_keys import Key
from .base import Channel
from .console import ConsoleChannel
from .hookspecs import hookimpl
from .push import PushChannel
from .sms import SmsChannel
from .smtp import EmailChannel
from .webhook import WebhookChannel
from .webpush import PUSH_HOSTS, URGENCIES, WebPushChannel


@hookimpl
def register_channels() -> list[type[Channel]]:
    """email, sms, push, webhook, webpush and console."""
    return [ConsoleChannel, EmailChannel, PushChannel, SmsChannel, WebhookChannel,
            WebPushChannel]


def _keys(channel: str, *keys: tuple[str, str, object, str]) -> list[Key]:
    return [Key(f"channels.{channel}.{name}", type_, default, description)
            for name, type_, default, description in keys]


@hookimpl
def register_settings() -> list[Key]:
    """The settings of email, sms, push, webhook, webpush and console (docs/channels.md)."""
    return [
        *_keys("email",
               ("host", "string", None, "The SMTP server."),
               ("port", "integer", None, "Its port (default 587 starttls, 465 tls, 25 none)."),
               ("tls", "string", "starttls", "starttls, tls (implicit) or none (loopback)."),
               ("username", "string", None, "The SMTP login."),
               ("password", "secret", None, "Its password: { env = \"NAME\" }."),
               ("from", "string", None, "The From address."),
               ("reply_to", "string", None, "A Reply-To address."),
               ("envelope_from", "string", None, "MAIL FROM, where bounces go."),
               ("message_id_domain", "string", None, "The domain of Message-IDs."),
               ("ca_file", "path", None, "Trust this CA (a self-signed test server)."),
               ("messages_per_connection", "integer", 100, "Reconnect after this many."),
               ("timeout", "number", 30.0, "Seconds per SMTP command."),
               ("local_hostname", "string", None, "The name given in EHLO."),
               ("dkim_selector", "string", None, "The DKIM selector (turns signing on)."),
               ("dkim_private_key_file", "path", None, "The DKIM private key (PEM file)."),
               ("dkim_private_key", "secret", None, "Or the key itself: { env = \"NAME\" }."),
               ("dkim_domain", "string", None, "The signing domain (default: the From "
                                               "domain).")),
        *_keys("sms",
               ("account_sid", "string", None, "The Twilio account SID."),
               ("auth_token", "secret", None, "The Twilio auth token."),
               ("from", "string", None, "The sending number (E.164)."),
               ("messaging_service_sid", "string", None, "Or a Messaging Service."),
               ("status_callback", "url", None, "Kanal's public URL for delivery callbacks."),
               ("inbound_url", "url", None, "The incoming message webhook's URL as Twilio "
                                             "signs it (default: the public URL with "
                                             "/hooks/twilio/NAME/inbound)."),
               ("timeout", "number", 10.0, "Seconds per request."),
               ("base_url", "url", "https://api.twilio.com", "The Twilio API.")),
        *_keys("push",
               ("service_account", "path", None, "The Firebase service account JSON."),
               ("project_id", "string", None, "The Firebase project."),
               ("access_token", "secret", None, "An OAuth2 token instead of the account."),
               ("timeout", "number", 10.0, "Seconds per request."),
               ("base_url", "url", "https://fcm.googleapis.com", "The FCM API.")),
        *_keys("webhook",
               ("url", "url", None, "Where to POST."),
               ("secret", "secret", None, "The HMAC key of X-Kanal-Signature."),
               ("timeout", "number", 10.0, "Seconds per request."),
               ("max_redirects", "integer", 3, "Redirects followed."),
               ("headers", "table", {}, "Extra headers, sent to the configured origin only."),
               ("allow_private", "boolean", False, "May reach private addresses.")),
        *_keys("webpush",
               ("vapid_private_key", "secret", None, "The VAPID private key (`kanal webpush "
                                                     "keys`): { env = \"NAME\" }."),
               ("subject", "string", None, "Who sends: mailto:ops@shop.example or an "
                                           "https URL."),
               ("ttl", "integer", 86_400, "Seconds a push service keeps an undelivered "
                                          "message."),
               ("urgency", "string", "normal", f"One of {', '.join(URGENCIES)}."),
               ("timeout", "number", 10.0, "Seconds per request."),
               ("push_hosts", "strings", list(PUSH_HOSTS), "Push services subscriptions "
                                                           "may point at."),
               ("allow_private", "boolean", False, "May reach loopback and private "
                                                   "addresses (a local stand-in).")),
        *_keys("console",
               ("path", "path", None, "Append here instead of standard output."),
               ("stands_in_for", "string", None, "email, sms, push or webhook: show what "
                                                 "that channel would send.")),
    ]
