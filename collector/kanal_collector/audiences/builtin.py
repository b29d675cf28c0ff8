"""The built-in destinations, registered through the same hooks as third-party ones."""

from __future__ import annotations

from ..channels.hookspecs import hookimpl
from ..config_keys import Key
from .csvfile import CsvDestination
from .destination import Destination
from .google import GoogleAdsDestination
from .meta import MetaDestination
from .webhook import WebhookDestination


@hookimpl
def register_destinations() -> list[type[Destination]]:
    """meta, google_ads, webhook and csv."""
    return [CsvDestination, GoogleAdsDestination, MetaDestination, WebhookDestination]


def _keys(destination: str, *keys: tuple[str, str, object, str]) -> list[Key]:
    return [Key(f"destinations.{destination}.{name}", type_, default, description)
            for name, type_, default, description in keys]


@hookimpl
def register_settings() -> list[Key]:
    """The settings of meta, google_ads, webhook and csv (docs/audiences.md)."""
    return [
        *_keys("meta",
               ("audience_id", "string", None, "The Custom Audience's id."),
               ("access_token", "secret", None, "A token with ads_management: "
                                                "{ env = \"NAME\" }."),
               ("app_secret", "secret", None, "The app's secret (sends appsecret_proof)."),
               ("api_version", "string", "v25.0", "The Graph API version."),
               ("base_url", "url", "https://graph.facebook.com", "The Graph API."),
               ("batch_size", "integer", 10_000, "Rows per request (at most 10,000)."),
               ("timeout", "number", 30.0, "Seconds per request.")),
        *_keys("google_ads",
               ("customer_id", "string", None, "The Google Ads account (digits)."),
               ("user_list_id", "string", None, "The Customer Match list's id."),
               ("developer_token", "secret", None, "The API developer token."),
               ("login_customer_id", "string", None, "The manager account, if any."),
               ("access_token", "secret", None, "An OAuth2 access token …"),
               ("client_id", "string", None, "… or an OAuth2 client id,"),
               ("client_secret", "secret", None, "its secret,"),
               ("refresh_token", "secret", None, "and a refresh token."),
               ("api_version", "string", "v26", "The Google Ads API version."),
               ("base_url", "url", "https://googleads.googleapis.com", "The Google Ads API."),
               ("token_url", "url", "https://oauth2.googleapis.com/token",
                "Where refresh tokens are exchanged."),
               ("batch_size", "integer", 10_000, "Operations per request (at most 10,000)."),
               ("timeout", "number", 30.0, "Seconds per request.")),
        *_keys("webhook",
               ("url", "url", None, "Where to POST."),
               ("secret", "secret", None, "The HMAC key of X-Kanal-Signature."),
               ("timeout", "number", 10.0, "Seconds per request."),
               ("max_redirects", "integer", 3, "Redirects followed."),
               ("headers", "table", {}, "Extra headers, sent to the configured origin only."),
               ("allow_private", "boolean", False, "May reach private addresses."),
               ("batch_size", "integer", 1000, "Rows per request.")),
        *_keys("csv",
               ("path", "path", None, "The CSV file changes are appended to."),
               ("batch_size", "integer", 10_000, "Rows per write.")),
    ]
