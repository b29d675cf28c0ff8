"""Sign-up forms: the checks, the double opt-in email at a real SMTP server (aiosmtpd),
the confirmation, and the hijack attempts it must refuse."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kanal_testing import App, SmtpCatcher
from onsite_util import NEWSLETTER, process, pull, send, user_hash

from kanal_collector.onsite import ConfirmationWorker
from kanal_collector.store import identities as identity_store

CONSENT = "Yes, email me offers. I can unsubscribe at any time."


@pytest.fixture
def env(onsite_env: Any, smtp: tuple[Any, SmtpCatcher]) -> Any:
    controller, _ = smtp
    return onsite_env(
        messages={"newsletter": NEWSLETTER},
        campaigns={"newsletter": "message: newsletter\nlayout: modal\n"},
        onsite={"form_min_seconds": 3, "confirm_page": "https://shop.example/confirm",
                "form_rate_limit": 100},
        channels={"email": {"host": "127.0.0.1", "port": controller.port, "tls": "none",
                            "from": "Shop <news@shop.example>"}})


def submit(env: App, anon: str, item: dict[str, Any], **fields: Any) -> Any:
    body = {"k": env.keys["public"], "a": anon, "ticket": item["ticket"], "consent": True,
            "hp": "", "url": "https://shop.example/", **fields}
    return env.client.post("/onsite/form", json=body)


def worker(env: App) -> ConfirmationWorker:
    found = env.app.extensions["kanal.supervisor"].workers[-1][0]
    assert isinstance(found, ConfirmationWorker)
    return found


def signups(env: App) -> list[tuple[Any, ...]]:
    return env.rows("SELECT channel, address, state, anonymous_id FROM signups ORDER BY id")


def confirm_link(smtp: tuple[Any, SmtpCatcher], to: str) -> str:
    """The token of the confirmation link in the newest mail to `to`."""
    _, catcher = smtp
    recipients, mail = [m for m in catcher.received if m[0] == [to]][-1]
    text = mail.get_body(("plain",)).get_content()
    assert mail["Subject"] == "Please confirm your subscription"
    found = re.search(r"https://shop\.example/confirm\?kanal_confirm=([\w-]+)", text)
    assert found, text
    return found.group(1)


def confirm(env: App, anon: str, token: str, **more: Any) -> dict[str, Any]:
    r = env.client.post("/onsite/confirm", json={"k": env.keys["public"], "a": anon,
                                                 "t": token, **more})
    assert r.status_code == 200
    answer: dict[str, Any] = r.get_json()
    return answer


def profile_of(env: App, kind: str, value: str) -> int | None:
    return identity_store.identity_profile(env.app.extensions["kanal"].db.conn(), kind, value)


def test_a_form_must_be_a_persons(env: App) -> None:
    [item] = pull(env, "b1")
    r = submit(env, "b1", item, email="ada@example.com")
    assert (r.status_code, r.get_json()["code"]) == (400, "too_fast")
    env.clock.advance(5)
    r = submit(env, "b1", item, email="ada@example.com", hp="http://spam.example")
    assert r.status_code == 200 and r.get_json() == {"ok": True, "thanks": None}
    assert signups(env) == []  # a bot's submission looks accepted and sends nothing
    for fields, code in (({"email": "ada@example.com", "consent": False}, "no_consent"),
                         ({"email": "ada@localhost"}, "invalid_email"),
                         ({"email": "not an address"}, "invalid_email")):
        r = submit(env, "b1", item, **fields)
        assert (r.status_code, r.get_json()["code"]) == (400, code)
    r = submit(env, "someone-else", item, email="ada@example.com")  # not their ticket
    assert (r.status_code, r.get_json()["code"]) == (400, "expired_form")
    r = submit(env, "b1", item, email="Ada@Example.com")
    assert r.get_json() == {"ok": True, "thanks": "Check your inbox to confirm."}
    assert signups(env) == [("email", "ada@example.com", "queued", "b1")]
    # The consent text shown is stored with the event.
    process(env)
    [event] = [e for e in env.events() if e["event"] == "Sign-up Form Submitted"]
    assert event["key_kind"] == "kanal"
    assert event["body"]["properties"]["consent_text"] == CONSENT
    assert event["body"]["properties"]["email"] == "ada@example.com"
    # One address gets at most address_limit (3) confirmations a day, whoever asks.
    for _ in range(4):
        assert submit(env, "b1", item, email="ada@example.com").status_code == 200
    assert len(signups(env)) == 3
    # A form shown more than form_max_age (1 day) ago is refused.
    env.clock.advance(86_400 + 5)
    r = submit(env, "b1", item, email="bo@example.com")
    assert (r.status_code, r.get_json()["code"]) == (400, "expired_form")


def test_forms_are_rate_limited_per_client_address(onsite_env: Any) -> None:
    env = onsite_env(messages={"newsletter": NEWSLETTER},
                     campaigns={"newsletter": "message: newsletter\nlayout: modal\n"},
                     onsite={"form_min_seconds": 0, "form_rate_limit": 2})
    [item] = pull(env, "b1")
    codes = [submit(env, "b1", item, email=f"p{i}@example.com").status_code
             for i in range(3)]
    assert codes == [200, 200, 429]


def test_double_opt_in_confirms_and_links_the_same_browser(
        env: App, smtp: tuple[Any, SmtpCatcher]) -> None:
    send(env, {"type": "page", "anonymousId": "b1"})
    [item] = pull(env, "b1")
    env.clock.advance(5)
    assert submit(env, "b1", item, email="ada@example.com").status_code == 200
    assert worker(env).run_once() == 1
    assert signups(env)[0][2] == "sent"
    token = confirm_link(smtp, "ada@example.com")
    # A link scanner fetching Kanal's own confirmation page confirms nothing.
    page = env.client.get(f"/onsite/confirm?t={token}")
    assert page.status_code == 200 and b'method="post"' in page.data
    assert confirm(env, "b1", token) == {"state": "confirmed", "same_browser": True}
    assert confirm(env, "b1", token)["state"] == "already"
    assert confirm(env, "b1", "x" * 43)["state"] == "unknown"
    process(env)
    owner = profile_of(env, "email", "ada@example.com")
    assert owner is not None and owner == profile_of(env, "anonymous_id", "b1")
    state = env.app.extensions["kanal"].db.conn().execute(
        "SELECT state FROM profiles WHERE id = ?", (owner,)).fetchone()[0]
    assert '"email":[true' in state and '"email/newsletter":[true' in state
    # The browser is now an identified person's: without userHash it sees nothing
    # personal (the snippet remembers the form was sent and doesn't offer it again).
    [again] = pull(env, "b1")
    assert again["content"]["title"].startswith("Hi there,")


def test_submitting_someone_elses_address_takes_nothing(
        env: App, smtp: tuple[Any, SmtpCatcher]) -> None:
    send(env, {"type": "identify", "userId": "victim", "anonymousId": "vic-phone",
               "traits": {"email": "vic@example.com", "first_name": "Vic"}}, secret=True)
    victim = profile_of(env, "email", "vic@example.com")
    assert victim is not None
    # The attacker's anonymous browser submits the victim's address …
    send(env, {"type": "page", "anonymousId": "att"})
    [item] = pull(env, "att")
    env.clock.advance(5)
    assert submit(env, "att", item, email="vic@example.com").status_code == 200
    worker(env).run_once()
    token = confirm_link(smtp, "vic@example.com")  # … the mail goes to the victim,
    # who confirms on their own phone: their subscription, no link to the attacker.
    assert confirm(env, "vic-phone", token) == {"state": "confirmed", "same_browser": False}
    process(env)
    assert profile_of(env, "email", "vic@example.com") == victim
    assert profile_of(env, "anonymous_id", "att") not in (None, victim)
    # Even confirmed in the submitting browser, an identified browser profile (someone
    # signed in there) is never merged with the address's owner.
    send(env, {"type": "identify", "userId": "eve", "anonymousId": "eve-laptop",
               "context": {"userHash": user_hash(env, "eve")}})
    [item] = pull(env, "eve-laptop", user="eve", hashed=user_hash(env, "eve"))
    env.clock.advance(5)
    assert submit(env, "eve-laptop", item, email="vic@example.com").status_code == 200
    worker(env).run_once()
    token = confirm_link(smtp, "vic@example.com")
    assert confirm(env, "eve-laptop", token)["same_browser"] is True
    process(env)
    eve = profile_of(env, "user_id", "eve")
    assert eve is not None and eve != victim
    assert profile_of(env, "anonymous_id", "eve-laptop") == eve
    assert env.rows("SELECT count(*) FROM merges WHERE into_profile = ? OR from_profile = ?",
                    victim, victim)[0][0] == 0
    # The attacker's pulls never show the victim's name.
    assert all("Vic" not in str(m) for m in pull(env, "att"))


def test_confirmation_page_of_kanal_and_the_built_in_text(onsite_env: Any,
                                                           smtp: tuple[Any, SmtpCatcher]
                                                           ) -> None:
    controller, catcher = smtp
    env = onsite_env(
        messages={"newsletter": NEWSLETTER},
        campaigns={"newsletter": "message: newsletter\nlayout: modal\n"},
        onsite={"form_min_seconds": 0},
        channels={"email": {"host": "127.0.0.1", "port": controller.port, "tls": "none",
                            "from": "news@shop.example"}})
    [item] = pull(env, "b1")
    assert submit(env, "b1", item, email="cy@example.com").status_code == 200
    worker(env).run_once()
    _, mail = catcher.received[-1]
    text = mail.get_body(("plain",)).get_content()
    link = re.search(r"http://localhost/onsite/confirm\?t=([\w-]+)", text)
    assert link, text
    page = env.client.get(f"/onsite/confirm?t={link.group(1)}")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert b"<title>Confirm your subscription</title>" in page.data
    # The page speaks the browser's language (the catalogs of tracking/locales/).
    swedish = env.client.get(f"/onsite/confirm?t={link.group(1)}",
                             headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert '<html lang="sv">' in swedish.text and ">Bekräfta</button>" in swedish.text
    done = env.client.post("/onsite/confirm", data={"t": link.group(1)},
                           headers={"Accept-Language": "fi"})
    assert done.status_code == 200 and "Tilauksesi on nyt voimassa." in done.text
    again = env.client.post("/onsite/confirm", data={"t": link.group(1)})
    assert again.status_code == 200 and "You had confirmed already." in again.text
    unknown = env.client.post("/onsite/confirm", data={"t": "no-such-token"},
                              headers={"Accept-Language": "da"})
    assert unknown.status_code == 404 and "Linket blev ikke fundet" in unknown.text
    process(env)
    assert profile_of(env, "email", "cy@example.com") is not None
    # The browser wasn't there to say who it was: nothing linked.
    assert profile_of(env, "email", "cy@example.com") != profile_of(env, "anonymous_id",
                                                                     "b1")


PHONE_FORM = """\
onsite:
  title: Texts with offers
  form:
    phone: true
    consent: Yes, text me offers.
    topic: offers
"""


def test_sms_double_opt_in_rebuild_and_forget(onsite_env: Any, tmp_path: Any) -> None:
    import json

    from kanal_collector.clock import FakeClock
    from kanal_collector.onsite import OnsiteStep
    from kanal_collector.profiles.privacy import forget
    from kanal_collector.profiles.rebuild import rebuild

    outbox = tmp_path / "sms.jsonl"
    env = onsite_env(messages={"texts": PHONE_FORM},
                     campaigns={"texts": "message: texts\nlayout: slide_in\n"},
                     onsite={"form_min_seconds": 0},
                     channels={"sms": {"type": "console", "path": str(outbox)}})
    send(env, {"type": "page", "anonymousId": "b1"})
    [item] = pull(env, "b1")
    r = submit(env, "b1", item, phone="070-123 45 67", country="SE")
    assert r.status_code == 200, r.get_json()
    worker(env).run_once()
    [line] = [json.loads(x) for x in outbox.read_text().splitlines()]
    assert line["stands_in_for"] == "sms" and line["recipient"] == "+46701234567"
    token = re.search(r"confirm\?t=([\w-]+)", line["content"]["text"]).group(1)
    assert confirm(env, "b1", token)["state"] == "confirmed"
    process(env)
    owner = profile_of(env, "phone", "+46701234567")
    assert owner is not None and owner == profile_of(env, "anonymous_id", "b1")
    # The double opt-in is the SMS opt-in marketing texts need (by default).
    from kanal_collector.messages.eligibility import Policy, channel_info, check, load_person

    conn = env.app.extensions["kanal"].db.conn()
    person, sms = load_person(conn, owner), channel_info("sms")
    assert person is not None and sms is not None and "sms" in Policy().opt_in
    assert check(conn, person, sms, kind="marketing", topic=None,
                 policy=Policy()) == ("+46701234567", None)
    # A rebuild replays the log to the same identities.
    rebuild(conn, FakeClock(env.clock.now()), also=[OnsiteStep()])
    rebuilt = profile_of(env, "phone", "+46701234567")
    assert rebuilt is not None and rebuilt == profile_of(env, "anonymous_id", "b1")
    # `kanal forget` takes the sign-ups (and the consent texts) with the person.
    forget(conn, "+46701234567", int(env.clock.now() * 1000))
    assert env.rows("SELECT count(*) FROM signups")[0][0] == 0
    assert profile_of(env, "phone", "+46701234567") is None
