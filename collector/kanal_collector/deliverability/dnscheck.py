"""`kanal email check DOMAIN`: the SPF, DKIM and DMARC records a From domain needs.

What is expected comes from the config: the email channels that send from DOMAIN (their
`from`), their SMTP host (a known provider's SPF include, else `a:<host>`), their
envelope sender (VERP's bounce domain, `envelope_from`, else the From domain: SPF is
checked there), and their DKIM selector and key (the exact record to publish).

- SPF: one `v=spf1` record at each envelope domain, naming the relay, ending in `-all`
  or `~all` (never `+all`), within the 10 DNS lookups RFC 7208 allows.
- DKIM: at `<selector>._domainkey.<domain>`, `p=` must be the configured key's.
- DMARC: `_dmarc.<domain>` (or its parent's) with `v=DMARC1` and a policy; Gmail and
  Yahoo require one of bulk senders (p=none is enough to start).
- The bounce domain's MX must exist (it should point at the Kanal host).

The resolver is injectable (`Resolver`); tests stub it, nothing here needs the internet
except the real resolver (dnspython).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..channels.dkim import dns_record, signer_from_settings
from ..channels.tables import configured_channels
from ..config import Config, resolve_secret
from ..messages.sending import from_domain
from .settings import Settings, verp_channels

_PROVIDERS = (
    (re.compile(r"(^|\.)amazonaws\.com$"), "include:amazonses.com"),
    (re.compile(r"(^|\.)sendgrid\.net$"), "include:sendgrid.net"),
    (re.compile(r"(^|\.)mailgun\.org$"), "include:mailgun.org"),
    (re.compile(r"(^|\.)postmarkapp\.com$"), "include:spf.mtasv.net"),
    (re.compile(r"(^|\.)(brevo|sendinblue)\.com$"), "include:spf.brevo.com"),
    (re.compile(r"(^|\.)resend\.com$"), "include:amazonses.com"),
)
"""SMTP hosts of known providers → the SPF include they document."""
_LOOKUPS = re.compile(r"^[+\-~?]?(include:|a\b|a:|mx\b|mx:|ptr|exists:|redirect=)", re.I)
_MAX_LOOKUPS = 10


class DnsError(Exception):
    """The DNS could not be asked (timeout, no name servers)."""


class Resolver(Protocol):
    """What the check asks of DNS. An absent name or record is an empty list."""

    def txt(self, name: str) -> list[str]:
        """The TXT records of `name`, each one string (its strings joined)."""
        ...

    def mx(self, name: str) -> list[str]:
        """The MX hosts of `name`."""
        ...


class DnsPythonResolver:
    """The system's DNS, through dnspython."""

    def __init__(self, timeout: float = 5.0) -> None:
        import dns.resolver

        self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout

    def _answer(self, name: str, kind: str) -> Any:
        import dns.exception
        import dns.resolver

        try:
            return self._resolver.resolve(name, kind)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise DnsError(f"{kind} {name}: {exc}") from None

    def txt(self, name: str) -> list[str]:
        """TXT records, strings joined (RFC 7208 and RFC 6376 say so)."""
        return [b"".join(r.strings).decode("utf-8", "replace")
                for r in self._answer(name, "TXT")]

    def mx(self, name: str) -> list[str]:
        """MX hosts without the trailing dot."""
        return [str(r.exchange).rstrip(".") for r in self._answer(name, "MX")]


@dataclass
class Finding:
    """One record: where, what is expected, what was found, and what is wrong."""

    kind: str
    name: str
    expected: str
    found: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem (advice may remain)."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """As `--json` prints it."""
        return {"kind": self.kind, "name": self.name, "expected": self.expected,
                "found": self.found, "ok": self.ok, "problems": self.problems,
                "advice": self.advice}


@dataclass(frozen=True)
class _Sender:
    channel: str
    host: str
    envelope_domain: str
    dkim: tuple[str, str, str] | None
    """(selector, domain, record)."""


def spf_mechanism(host: str) -> str:
    """The SPF term that authorizes an SMTP relay: a provider's include, else a:host."""
    for pattern, include in _PROVIDERS:
        if pattern.search(host.lower()):
            return include
    return f"a:{host.lower()}"


def _senders(domain: str, config: Config) -> list[_Sender]:
    settings = Settings.from_config(config)
    verp = verp_channels(settings, config)
    out = []
    for name, table in configured_channels(config).items():
        if str(table.get("type", name)) != "email" or table.get("enabled", True) is False:
            continue
        if from_domain(table) != domain:
            continue
        resolved = {k: resolve_secret(v) for k, v in table.items()}
        if settings.bounces is not None and name in verp:
            envelope = settings.bounces.domain
        else:
            envelope = (str(resolved.get("envelope_from") or "").rpartition("@")[2].lower()
                        or domain)
        signer = signer_from_settings(resolved, domain)
        dkim = None if signer is None else (signer.selector, signer.domain,
                                            dns_record(signer.private_key))
        out.append(_Sender(name, str(table.get("host", "")), envelope, dkim))
    return out


def check_domain(domain: str, config: Config, resolver: Resolver) -> list[Finding]:
    """Every record DOMAIN needs for the channels that send from it."""
    domain = domain.strip().rstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+",
                        domain):
        raise ValueError(f"DOMAIN: {domain!r} is not a domain name")
    senders = _senders(domain, config)
    findings: list[Finding] = []
    if not senders:
        findings.append(Finding("channels", domain, "an email channel with from = …@" + domain,
                                problems=[f"no [channels.*] table of type email sends from "
                                          f"{domain}; only the DMARC record is checked"]))
    by_envelope: dict[str, list[_Sender]] = {}
    for s in senders:
        by_envelope.setdefault(s.envelope_domain, []).append(s)
    for envelope, group in sorted(by_envelope.items()):
        findings.append(_spf(envelope, sorted({spf_mechanism(s.host) for s in group if s.host}),
                             resolver))
    dkims = {s.dkim for s in senders if s.dkim is not None}
    if senders and not dkims:
        findings.append(Finding("DKIM", f"<selector>._domainkey.{domain}",
                                "a DKIM key (dkim_selector and dkim_private_key_file)",
                                problems=["no channel sending from this domain signs with "
                                          "DKIM: set dkim_selector and a key"]))
    for selector, dkim_domain, record in sorted(dkims):
        findings.append(_dkim(f"{selector}._domainkey.{dkim_domain}", record, resolver))
    findings.append(_dmarc(domain, resolver))
    settings = Settings.from_config(config)
    if settings.bounces is not None and any(
            s.envelope_domain == settings.bounces.domain for s in senders):
        findings.append(_mx(settings.bounces.domain, resolver))
    return findings


def _spf(name: str, wanted: list[str], resolver: Resolver) -> Finding:
    expected = "v=spf1 " + " ".join([*wanted, "~all"]) if wanted else "v=spf1 … ~all"
    records = [r for r in resolver.txt(name) if r.lower().startswith("v=spf1")]
    f = Finding("SPF", name, expected, records)
    if not records:
        f.problems.append("no SPF record")
        return f
    if len(records) > 1:
        f.problems.append(f"{len(records)} SPF records: receivers treat that as an error "
                          f"(permerror); merge them into one")
        return f
    terms = records[0].split()[1:]
    lowered = [t.lower() for t in terms]
    for term in wanted:
        if term.lower() not in lowered and f"+{term.lower()}" not in lowered:
            f.problems.append(f"{term} is missing (the relay isn't authorized)")
    last = lowered[-1] if lowered else ""
    if last in ("+all", "all"):
        f.problems.append("it ends in +all: anyone may send as this domain")
    elif last == "?all" or not last.endswith("all") and not last.startswith("redirect="):
        f.advice.append("end it with ~all (or -all) so other senders fail")
    lookups = _lookup_count(terms, resolver, depth=0)
    if lookups > _MAX_LOOKUPS:
        f.problems.append(f"{lookups} DNS lookups; SPF allows {_MAX_LOOKUPS} (permerror)")
    return f


def _lookup_count(terms: list[str], resolver: Resolver, depth: int) -> int:
    count = 0
    for term in terms:
        if not _LOOKUPS.match(term):
            continue
        count += 1
        target = term.split(":", 1)[1] if term.lower().lstrip("+-~?").startswith(
            "include:") else None
        if target is None and term.lower().startswith("redirect="):
            target = term.split("=", 1)[1]
        if target and depth < 5:
            inner = [r for r in resolver.txt(target) if r.lower().startswith("v=spf1")]
            if inner:
                count += _lookup_count(inner[0].split()[1:], resolver, depth + 1)
    return count


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _dkim(name: str, record: str, resolver: Resolver) -> Finding:
    found = resolver.txt(name)
    f = Finding("DKIM", name, record, found)
    want = _tags(record)["p"]
    keys = [r for r in found if "p" in _tags(r)]
    if not keys:
        f.problems.append("no DKIM record: publish the expected one")
    elif not any(_tags(r)["p"] == want for r in keys):
        f.problems.append("the published key (p=) is not the configured one")
    return f


def _dmarc(domain: str, resolver: Resolver) -> Finding:
    name = f"_dmarc.{domain}"
    expected = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
    found = [r for r in resolver.txt(name) if r.lower().startswith("v=dmarc1")]
    labels = domain.split(".")
    if not found and len(labels) > 2:
        # A subdomain without its own record falls under its organizational domain's.
        parent = ".".join(labels[-2:])
        parent_found = [r for r in resolver.txt(f"_dmarc.{parent}")
                        if r.lower().startswith("v=dmarc1")]
        if parent_found:
            name, found = f"_dmarc.{parent}", parent_found
    f = Finding("DMARC", name, expected, found)
    if not found:
        f.problems.append("no DMARC record (Gmail and Yahoo require one of bulk senders)")
        return f
    if len(found) > 1:
        f.problems.append("more than one DMARC record: receivers ignore them all")
        return f
    policy = _tags(found[0]).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        f.problems.append(f"p= must be none, quarantine or reject, not {policy!r}")
    elif policy == "none":
        f.advice.append("p=none only reports; move to quarantine once reports are clean")
    if "rua" not in _tags(found[0]):
        f.advice.append("add rua=mailto:… to receive aggregate reports")
    return f


def _mx(domain: str, resolver: Resolver) -> Finding:
    found = resolver.mx(domain)
    f = Finding("MX", domain, f"{domain} MX 10 <the host running Kanal's bounce endpoint>",
                found)
    if not found:
        f.problems.append("no MX: bounces to the VERP addresses can't reach Kanal")
    return f


def report_lines(findings: list[Finding]) -> list[str]:
    """The findings as the command prints them."""
    lines: list[str] = []
    for f in findings:
        state = "ok" if f.ok else "MISSING" if not f.found else "WRONG"
        lines.append(f"{f.kind:<6} {f.name}: {state}")
        lines.append(f"       expected: {f.expected}")
        for record in f.found:
            lines.append(f"       found:    {record}")
        lines += [f"       ! {p}" for p in f.problems]
        lines += [f"       - {a}" for a in f.advice]
    return lines


def summary(findings: list[Finding]) -> Mapping[str, int]:
    """How many records are fine and how many have problems."""
    return {"ok": sum(f.ok for f in findings), "problems": sum(not f.ok for f in findings)}
