"""Every setting of kanal.toml, in one registry: its type, default and what it does.

The registry serves two readers: validation (`check_document`: an unknown table or key
is an error naming the nearest known one; a value of the wrong type gets a plain
message such as `server.port: a whole number from 0 to 65535, not 'eighty'`) and the
reference documentation (`reference()`).

Paths are dotted; `*` stands for any name (`quiet_hours.*.from`: a per-channel table).
Channel plugins declare the settings of their channel types through the
`register_settings` hook as keys under `channels.TYPE.` (channels/hookspecs.py); the
keys every `[channels.NAME]` table may have are `CHANNEL_COMMON` here. Likewise
destination plugins (ads audiences) as `destinations.TYPE.`, and `AUDIENCE_COMMON` for
every `[audiences.NAME]` table.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TYPES = ("string", "integer", "number", "boolean", "strings", "integers", "secret", "secrets",
         "path", "url", "choice", "duration", "time", "date", "timezone", "country", "table",
         "tables")


@dataclass(frozen=True)
class Key:
    """One setting: where it lives, its type, its default and a one-line description."""

    path: str
    type: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    env: str | None = None
    """The environment variable that sets it too (KANAL_…), if any."""
    field: str | None = None
    """The Config field it fills (config.py), if any."""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.path}: type must be one of {', '.join(TYPES)}")

    @property
    def table(self) -> str:
        """The table the key is in ('' at the top of the file)."""
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The key's own name."""
        return self.path.rpartition(".")[2]


def _k(path: str, type_: str, default: Any, description: str, **more: Any) -> Key:
    return Key(path, type_, default, description, **more)


CORE: tuple[Key, ...] = (
    _k("db", "string", "kanal.db", "The database: a SQLite file, or a postgresql:// URL "
       "(docs/storage.md).", env="KANAL_DB", field="db"),
    _k("journeys_dir", "path", "journeys", "Where the journey files are.",
       env="KANAL_JOURNEYS_DIR", field="journeys_dir"),
    _k("server.host", "string", "127.0.0.1", "The address to listen on.", env="KANAL_HOST",
       field="host"),
    _k("server.port", "integer", 8000, "The port to listen on (0 picks a free one).",
       minimum=0, maximum=65535, env="KANAL_PORT", field="port"),
    _k("server.threads", "integer", 16, "Request threads.", minimum=1,
       env="KANAL_THREADS", field="threads"),
    _k("server.public_url", "url", None, "The collector's public address (links, the "
       "Segment settings document).", env="KANAL_PUBLIC_URL", field="public_url"),
    _k("server.trusted_proxies", "strings", [], "Networks whose X-Forwarded-For is "
       "believed (CIDR).", env="KANAL_TRUSTED_PROXIES", field="trusted_proxies"),
    _k("ingest.anonymize_ip", "boolean", False, "Zero the last octet (IPv4) or 80 bits "
       "(IPv6) of client addresses.", env="KANAL_ANONYMIZE_IP", field="anonymize_ip"),
    _k("ingest.rate_limit", "number", 200.0, "Requests per second per key and client "
       "address (0 = off).", minimum=0, env="KANAL_RATE_LIMIT", field="rate_limit"),
    _k("ingest.rate_burst", "number", 400.0, "Burst of the rate limit.", minimum=0,
       env="KANAL_RATE_BURST", field="rate_burst"),
    _k("storage.synchronous", "choice", "FULL", "SQLite durability: FULL survives a power "
       "loss.", choices=("FULL", "NORMAL", "EXTRA"), env="KANAL_SYNCHRONOUS",
       field="synchronous"),
    _k("storage.busy_timeout", "number", 10.0, "Seconds to wait for the database's write "
       "lock.", minimum=0, env="KANAL_BUSY_TIMEOUT", field="busy_timeout"),
    _k("workers.poll_interval", "number", 1.0, "Seconds between polls of the log.",
       minimum=0.01, env="KANAL_POLL_INTERVAL", field="poll_interval"),
    _k("workers.lease_seconds", "number", 15.0, "How long the workers' lease (and each "
       "node's own) lasts without renewal: how soon another node takes over.",
       minimum=1, env="KANAL_LEASE_SECONDS", field="lease_seconds"),
    _k("messages.messages_dir", "path", "messages", "Where the message files are.",
       env="KANAL_MESSAGES_DIR"),
    _k("messages.batch_size", "integer", 50, "Outbox rows the dispatcher claims at once.",
       minimum=1),
    _k("messages.max_attempts", "integer", 8, "Attempts before a send fails.", minimum=1),
    _k("messages.backoff_base", "number", 30.0, "Seconds before the first retry (doubling).",
       minimum=0),
    _k("messages.backoff_max", "number", 21600.0, "The longest wait between retries "
       "(seconds).", minimum=0),
    _k("messages.stale_after", "number", 900.0, "Seconds after which another "
       "dispatcher's claim is treated as crashed.", minimum=1),
    _k("messages.consent_category", "string", "marketing", "The consent category "
       "marketing messages need."),
    _k("messages.require_consent", "boolean", False, "Marketing needs consent granted "
       "(false: only a refusal blocks it)."),
    _k("messages.opt_in", "strings", ["sms"], "Channels (names or kinds) where marketing "
       "needs an explicit subscription (marketing SMS by default)."),
    _k("tracking.base_url", "url", None, "The host of tracking links (default: "
       "server.public_url)."),
    _k("tracking.mailto", "string", None, "A mailto: address in List-Unsubscribe."),
    _k("tracking.keys", "secrets", [], "Signing keys of tracking links, newest first "
       "(default: random keys in the database)."),
    _k("tracking.bot_click_seconds", "number", 10.0, "A click this soon after sending is "
       "a scanner's.", minimum=0),
    _k("tracking.channels", "strings", ["email"], "Channels on the preference page."),
    _k("tracking.topics", "strings", [], "Topics on the preference page."),
    _k("tracking.one_click", "choice", "all", "What a mail client's one-click unsubscribe "
       "stops: all marketing email, or only the email's topic.", choices=("all", "topic")),
    _k("tracking.link_hosts", "strings", None, "Hosts a link built from untrusted data may "
       "point at (`*.shop.example` for subdomains; default: the host of "
       "server.public_url)."),
    _k("journeys.default_timezone", "timezone", "UTC", "The time zone of people without "
       "one."),
    _k("quiet_hours.from", "time", None, "Start of the quiet hours (\"21:00\")."),
    _k("quiet_hours.to", "time", None, "End of the quiet hours (\"08:00\")."),
    _k("quiet_hours.timezone", "timezone", None, "Time zone of the quiet hours for "
       "people without one."),
    _k("quiet_hours.*.from", "time", None, "Quiet hours of one channel: start."),
    _k("quiet_hours.*.to", "time", None, "Quiet hours of one channel: end."),
    _k("quiet_hours.*.timezone", "timezone", None, "Quiet hours of one channel: time zone."),
    _k("frequency.per_day", "integer", None, "Marketing messages per person per local day.",
       minimum=0),
    _k("frequency.per_week", "integer", None, "Marketing messages per person in 7 local "
       "days.", minimum=0),
    _k("frequency.daily_budget", "integer", None, "Marketing messages per person per day "
       "across journeys, by priority.", minimum=0),
    _k("frequency.*.per_day", "integer", None, "One channel's messages per person per "
       "day.", minimum=0),
    _k("frequency.*.per_week", "integer", None, "One channel's messages per person per "
       "week.", minimum=0),
    _k("attribution.goal_events", "strings", ["Order Completed"], "The events that are "
       "conversions."),
    _k("attribution.lookback", "duration", "30d", "How far back touchpoints count."),
    _k("attribution.half_life", "duration", "7d", "time_decay's half-life."),
    _k("attribution.ignore_referrers", "strings", [], "Referrer hosts that are no "
       "touchpoint (payment pages)."),
    _k("costs.currency", "string", None, "The currency of the costs (three letters)."),
    _k("costs.channel.*", "number", None, "Spend on a channel.", minimum=0),
    _k("costs.campaign.*", "number", None, "Spend on a campaign.", minimum=0),
    _k("costs.journey.*", "number", None, "Spend on a journey.", minimum=0),
    _k("profiles.default_country", "country", None, "The country of national phone "
       "numbers of people without one (\"SE\")."),
    _k("dashboard.login_attempts", "integer", 10, "Failed sign-ins with one key prefix from "
       "one address before that pair waits.", minimum=1),
    _k("dashboard.login_window", "duration", "10m", "How long failed sign-ins count, and "
       "the wait."),
    # [products]: products/settings.py checks the values' meaning too.
    _k("products.default_currency", "string", None, "The currency of prices that name "
       "none; templates fall back to it."),
    _k("products.require_image", "boolean", True, "Recommend only products with an image."),
    _k("products.exclude_bought_within", "duration", "30d", "Don't recommend what the "
       "person bought this recently."),
    _k("products.min_support", "integer", 3, "Bought/viewed together: people who did "
       "both, at least.", minimum=1),
    _k("products.history_window", "duration", "365d", "Orders and views the lists are "
       "built from."),
    _k("products.popular_window", "duration", "90d", "\"popular\": distinct buyers in "
       "this window."),
    _k("products.trending_window", "duration", "7d", "\"trending\": buyers, carts and "
       "views in this window."),
    _k("products.rebuild_every", "duration", "1h", "Rebuild the recommendation lists at "
       "least this often."),
    _k("products.rebuild_after", "duration", "1m", "… and this long after new orders or "
       "views."),
    _k("products.attribution_window", "duration", "7d", "A purchase this soon after a "
       "recommendation click counts for it."),
    _k("products.price_drop_percent", "number", 10, "Product Price Dropped: a drop of at "
       "least this many per cent (or price_drop_amount).", minimum=0, maximum=100),
    _k("products.price_drop_amount", "number", None, "… or of at least this amount.",
       minimum=0),
    _k("products.price_drop_window", "duration", "14d", "… for people who viewed or "
       "carted it this recently."),
    _k("products.signal_max_age", "duration", "1d", "A price or stock change older than "
       "this when seen makes no event."),
    _k("products.back_in_stock_from", "choice", "any", "Who may ask to be told of a "
       "restock: any key, or trusted ones only.", choices=("any", "trusted")),
    _k("products.allow_private_feeds", "boolean", False, "Feeds may be fetched from "
       "loopback or private addresses."),
    _k("products.feeds", "tables", [], "[[products.feeds]]: name, url, every, format, "
       "delete_missing (see Products)."),
    # [predict]: predict/settings.py checks the values' meaning too.
    _k("predict.enabled", "boolean", True, "Refit the predictive scores on schedule inside "
       "`kanal serve` (in a process of its own)."),
    _k("predict.refit_every", "duration", "1d", "Refit when the newest fit started this "
       "long ago."),
    _k("predict.min_customers", "integer", 200, "Customers with an order the models need, "
       "at least.", minimum=1),
    _k("predict.min_history_days", "integer", 90, "Days between the first order and now "
       "the models need, at least.", minimum=1),
    _k("predict.min_repeat_customers", "integer", 50, "Customers with a repeat purchase the "
       "models need, at least.", minimum=1),
    _k("predict.holdout", "duration", "90d", "The calibration's holdout: the last days of "
       "history, predicted from the rest (whole days)."),
    _k("predict.currency", "string", None, "The shop's one currency, shown with predicted "
       "and historic values (default: products.default_currency, else costs.currency)."),
    # [deliverability]: deliverability/settings.py and messages/sending.py check the
    # values' meaning too.
    _k("deliverability.soft_bounce_limit", "integer", 3, "Soft bounces that suppress an "
       "address (within soft_bounce_days).", minimum=1),
    _k("deliverability.soft_bounce_days", "integer", 7, "… within this many days.",
       minimum=1),
    _k("deliverability.feedback_id", "string", None, "The Feedback-ID's sender part on "
       "marketing email."),
    _k("deliverability.sunset_days", "integer", None, "No marketing email to people who "
       "haven't opened or clicked in this many days.", minimum=1),
    _k("deliverability.sunset_exempt", "strings", [], "Journeys or messages the sunset "
       "rule leaves alone."),
    _k("deliverability.warmup.*.ramp", "integers", None, "Messages per day from one From "
       "domain, day by day."),
    _k("deliverability.warmup.*.start", "date", None, "The ramp's first day (default: the "
       "first send)."),
    _k("deliverability.throttle.*.domains", "strings", None, "Recipient domains of one "
       "throttle (default: its name)."),
    _k("deliverability.throttle.*.per_minute", "integer", None, "Messages a minute to "
       "them.", minimum=1),
    _k("deliverability.throttle.*.per_hour", "integer", None, "Messages an hour to them.",
       minimum=1),
    _k("deliverability.throttle.*.per_day", "integer", None, "Messages a day to them.",
       minimum=1),
    _k("deliverability.bounces.address", "string", None, "The VERP base address of "
       "bounces (\"bounces@bounce.shop.example\")."),
    _k("deliverability.bounces.listen", "string", None, "host:port of the bounce (DSN) "
       "endpoint."),
    _k("deliverability.bounces.protocol", "choice", "smtp", "smtp or lmtp.",
       choices=("smtp", "lmtp")),
    _k("deliverability.bounces.channels", "strings", None, "Channels whose envelope "
       "sender is the VERP address (default: every email channel)."),
    _k("deliverability.bounces.max_size", "integer", 1_000_000, "The largest report "
       "accepted (bytes).", minimum=10_000),
    _k("deliverability.ses.topic_arns", "strings", [], "Amazon SNS topics whose "
       "notifications are accepted."),
    _k("deliverability.ses.confirm_subscriptions", "boolean", True, "Confirm SNS "
       "subscriptions of the listed topics."),
    _k("deliverability.postmark.username", "string", None, "Basic-auth user of the "
       "Postmark webhook."),
    _k("deliverability.postmark.password", "secret", None, "Its password."),
    _k("deliverability.mailgun.signing_key", "secret", None, "Mailgun's webhook signing "
       "key."),
    _k("deliverability.mailgun.tolerance", "number", 86_400.0, "Seconds a signed "
       "timestamp stays valid.", minimum=1),
    _k("deliverability.sendgrid.public_key", "string", None, "SendGrid's Event Webhook "
       "verification key."),
    _k("deliverability.sendgrid.tolerance", "number", 86_400.0, "Seconds a signed "
       "timestamp stays valid.", minimum=1),
    _k("deliverability.brevo.username", "string", None, "Basic-auth user of the Brevo "
       "webhook."),
    _k("deliverability.brevo.password", "secret", None, "Its password."),
    _k("deliverability.brevo.token", "secret", None, "Or a bearer token."),
    _k("deliverability.resend.secret", "secret", None, "Resend's webhook secret "
       "(whsec_…)."),
    _k("deliverability.resend.tolerance", "number", 300.0, "Seconds a signed timestamp "
       "stays valid.", minimum=1),
    # [onsite]: onsite/settings.py checks the values' meaning too.
    _k("onsite.dir", "path", "onsite", "Where the on-site campaign files are.",
       env="KANAL_ONSITE_DIR"),
    _k("onsite.site_max_age", "integer", 60, "Seconds browsers keep the site document.",
       minimum=0),
    _k("onsite.queue_ttl", "duration", "7d", "How long a journey-queued on-site message "
       "waits to be shown (a step's `expires` wins)."),
    _k("onsite.form_min_seconds", "number", 3, "A sign-up form sent sooner after it was "
       "shown is a bot's.", minimum=0),
    _k("onsite.form_max_age", "duration", "1d", "A form shown longer ago than this is "
       "refused (reload the page)."),
    _k("onsite.form_rate_limit", "number", 10, "Form submissions a minute per client "
       "address.", minimum=0),
    _k("onsite.address_limit", "integer", 3, "Confirmations to one address a day.",
       minimum=1),
    _k("onsite.confirm_ttl", "duration", "7d", "How long a confirmation link works."),
    _k("onsite.confirm_page", "url", None, "The shop's page (with the snippet) that "
       "confirms sign-ups and links the browser."),
    _k("onsite.confirm_message", "string", None, "The message file of confirmations "
       "(default: a built-in text)."),
    _k("onsite.email_channel", "string", "email", "The channel email confirmations go "
       "out on."),
    _k("onsite.sms_channel", "string", "sms", "The channel SMS confirmations go out on."),
    _k("onsite.webpush_channel", "string", None, "The web push channel the pages "
       "subscribe with (default: the first of type webpush)."),
    _k("onsite.service_worker", "string", "/kanal-sw.js", "Where the shop serves Kanal's "
       "service worker."),
)
"""The settings of Kanal itself."""

CHANNEL_COMMON: tuple[Key, ...] = (
    _k("channels.*.type", "string", None, "The channel type (default: the table's name)."),
    _k("channels.*.enabled", "boolean", True, "false: keep the table, don't build it."),
    _k("channels.*.rate_per_second", "number", None, "How fast the dispatcher hands it "
       "messages.", minimum=0.001),
    _k("channels.*.rate_burst", "number", None, "Burst of that rate.", minimum=1),
)
"""The settings every `[channels.NAME]` table may have."""

AUDIENCE_COMMON: tuple[Key, ...] = (
    _k("audiences.*.destination", "string", None, "The destination type: meta, "
       "google_ads, webhook, csv or a plugin's."),
    _k("audiences.*.segment", "string", None, "The segment it follows (none: only "
       "journey steps put people in)."),
    _k("audiences.*.every", "duration", "1h", "How often it is synced."),
    _k("audiences.*.identifiers", "strings", ["email", "phone"], "What may be sent "
       "(hashed): email, phone, name, address, birthday, gender."),
    _k("audiences.*.enabled", "boolean", True, "false: keep the table, don't sync it."),
    _k("audiences.*.description", "string", None, "A note for people."),
)
"""The settings every `[audiences.NAME]` table may have (its destination type declares
the others, through register_settings, as destinations.TYPE.KEY)."""


# -- checking --------------------------------------------------------------------------

def _matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    return len(pattern) == len(path) and all(p in ("*", s) for p, s in zip(pattern, path,
                                                                             strict=True))


def _is_secret_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"env"} and isinstance(
        value["env"], str)


def _number_words(key: Key, whole: bool) -> str:
    what = "a whole number" if whole else "a number"
    low, high = key.minimum, key.maximum

    def show(v: float) -> str:
        return f"{v:g}"

    if low is not None and high is not None:
        return f"{what} from {show(low)} to {show(high)}"
    if low is not None:
        return f"{what} of at least {show(low)}"
    return what


def check_value(key: Key, value: Any, where: str | None = None) -> str | None:
    """What is wrong with `value` for `key` (a plain sentence naming it), or None."""
    where = where or key.path
    kind = key.type
    if kind == "secret" and _is_secret_ref(value):
        return None
    if kind in ("integer", "number"):
        whole = kind == "integer"
        if isinstance(value, str):  # "8000" says 8000 (an environment value is text)
            try:
                value = int(value) if whole else float(value)
            except ValueError:
                return f"{where}: {_number_words(key, whole)}, not {value!r}"
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            not whole and isinstance(value, float) and math.isfinite(value))
        too_low = ok and key.minimum is not None and value < key.minimum
        too_high = ok and key.maximum is not None and value > key.maximum
        if not ok or too_low or too_high:
            return f"{where}: {_number_words(key, whole)}, not {value!r}"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{where}: true or false, not {value!r}"
    if kind in ("strings", "secrets"):
        good = isinstance(value, list) and all(
            isinstance(v, str) or (kind == "secrets" and _is_secret_ref(v)) for v in value)
        return None if good else f"{where}: a list of strings, not {value!r}"
    if kind == "integers":
        good = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
        return None if good else f"{where}: a list of whole numbers, not {value!r}"
    if kind == "table":
        return None if isinstance(value, Mapping) else f"{where}: a table, not {value!r}"
    if kind == "tables":
        good = isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
        return None if good else f"{where}: tables ([[{where}]]), not {value!r}"
    if kind == "date" and isinstance(value, dt.date):
        return None
    if kind == "time" and isinstance(value, dt.time):
        return (f"{where}: a time of day in quotes, like \"{value.strftime('%H:%M')}\" "
                f"(unquoted it is a TOML time)")
    if not isinstance(value, str):
        what = "a string or { env = \"NAME\" }" if kind == "secret" else "a string"
        return f"{where}: {what}, not {value!r}"
    if kind == "choice" and value.upper() not in key.choices and value not in key.choices:
        return f"{where}: one of {', '.join(key.choices)}, not {value!r}"
    if kind == "url" and not value.startswith(("http://", "https://")):
        return f"{where}: a URL starting with http:// or https://, not {value!r}"
    if kind == "country" and not (len(value.strip()) == 2 and value.strip().isalpha()):
        return f"{where}: a two-letter country code like \"SE\", not {value!r}"
    return None


def _nearest(name: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def check_document(data: Mapping[str, Any], keys: Sequence[Key], *,
                   skip: Iterable[str] = ("channels.*", "audiences.*")) -> list[str]:
    """Every problem of a parsed kanal.toml against `keys`: unknown tables and keys
    (naming the nearest known one) and values of the wrong type. Tables matching a path
    of `skip` are not looked into (channel and audience tables are checked with their
    plugins' keys)."""
    patterns = [(k.path.split("."), k) for k in keys]
    skipped = [s.split(".") for s in skip]
    problems: list[str] = []

    def known_tables(prefix: list[str]) -> set[str]:
        """Names allowed under `prefix`: keys and sub-tables."""
        out = set()
        for parts, _ in patterns:
            if len(parts) > len(prefix) and _matches(parts[:len(prefix)], prefix):
                out.add(parts[len(prefix)])
        return out

    def visit(table: Mapping[str, Any], prefix: list[str]) -> None:
        for name, value in table.items():
            path = [*prefix, str(name)]
            dotted = ".".join(path)
            key = next((k for parts, k in patterns if _matches(parts, path)), None)
            if any(_matches(s, path) for s in skipped):
                if not isinstance(value, Mapping):
                    problems.append(f"[{dotted}] must be a table")
                continue
            if key is not None:
                problem = check_value(key, value, dotted)
                if problem:
                    problems.append(problem)
                continue
            allowed = known_tables(path)
            if isinstance(value, Mapping) and allowed:
                visit(value, path)
                continue
            siblings = known_tables(prefix) - {"*"}
            near = _nearest(str(name), siblings)
            where = f"[{'.'.join(prefix)}]" if prefix else "the top of the file"
            if isinstance(value, Mapping):
                what = f"unknown table [{dotted}]"
                hint = f"; did you mean [{'.'.join([*prefix, near])}]?" if near else ""
            else:
                what = f"unknown key {dotted} in {where}"
                hint = f"; did you mean {'.'.join([*prefix, near])}?" if near else ""
            if not near:
                hint = f"; known: {', '.join(sorted(siblings))}" if siblings else ""
            problems.append(what + hint)

    visit(data, [])
    return problems


def check_plugin_table(section: str, name: str, table: Mapping[str, Any], type_name: str,
                       keys: Sequence[Key], common: Sequence[Key], what: str) -> list[str]:
    """The problems of one `[SECTION.NAME]` table of a plugin type (a channel, a
    destination), given the keys every such table has and the type's declared keys."""
    own = [Key(f"{section}.{name}.{k.name}", k.type, k.default, k.description, k.choices,
               k.minimum, k.maximum) for k in (*common, *keys)]
    problems = []
    for key_name, value in table.items():
        key = next((k for k in own if k.name == key_name), None)
        if key is None:
            near = _nearest(str(key_name), [k.name for k in own])
            hint = f"; did you mean {near}?" if near else \
                f"; a {type_name} {what} takes {', '.join(sorted(k.name for k in own))}"
            problems.append(f"unknown key {section}.{name}.{key_name} ({what} type "
                            f"{type_name}){hint}")
            continue
        if _is_secret_ref(value):
            continue  # any setting may come from the environment
        problem = check_value(key, value)
        if problem:
            problems.append(problem)
    return problems


def check_channel_table(name: str, table: Mapping[str, Any], type_name: str,
                        keys: Sequence[Key]) -> list[str]:
    """The problems of one `[channels.NAME]` table, given its type's declared keys."""
    return check_plugin_table("channels", name, table, type_name, keys, CHANNEL_COMMON,
                              "channel")


# -- documentation ---------------------------------------------------------------------

def reference(keys: Iterable[Key]) -> Iterator[tuple[str, str, str, str]]:
    """(path, type, default, description) of each key, for the reference docs."""
    for key in keys:
        kind = f"one of {', '.join(key.choices)}" if key.choices else key.type
        default = "-" if key.default is None else repr(key.default)
        yield key.path, kind, default, key.description
