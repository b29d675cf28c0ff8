"""`kanal journeys why` as text: the report of explain.py in lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .wording import when_text as _when
from .wording import zone_of as _zone


def render(report: Mapping[str, Any]) -> str:
    """The report as `kanal journeys why` prints it."""
    tz = _zone(report["person"]["timezone"])
    j = report["journey"]
    person = report["person"]
    ids = ", ".join(f"{i['kind']}={i['value']}" for i in person["identities"]) or "no ids"
    lines = [f"Journey {j['name']} (v{j['version']}, "
             f"{'enabled' if j['enabled'] else 'disabled'}) — profile {person['profileId']} "
             f"({ids}{', timezone ' + person['timezone'] if person['timezone'] else ''})",
             report["summary"]]
    for run in report["runs"]:
        lines.append("")
        trig = run["trigger"]
        how = ""
        if trig is not None:
            how = f" on {trig['event'] or 'event'} #{trig['eventId']}"
            if trig["properties"]:
                shown = ", ".join(f"{k}={v!r}" for k, v in list(trig["properties"].items())[:5])
                how += f" ({shown})"
        if trig is not None and not run.get("trusted", True):
            how += " — untrusted data (a public key): it may not aim links"
        lines.append(f"Run #{run['id']} (v{run['version']}): entered "
                     f"{_when(run['enteredAt'], tz)}{how}")
        for item in run["steps"]:
            at = _when(item["at"], tz) if item.get("at") else ""
            instant = item["kind"] in ("if", "split", "set_trait", "webhook", "exit", None)
            lines.append(f"  {item['step'] or '-'}: {item['text']}"
                         + (f"   [{at}]" if at and instant else ""))
            outbox = item.get("outbox")
            if outbox:
                for d in outbox["decisions"]:
                    lines.append(f"      {d['text']}")
        if run["end"] is not None:
            lines.append(f"  end: {run['end']['text']}")
        if run["conversion"] is not None:
            lines.append(f"  goal: {run['conversion']['text']}")
    if report["notEntered"]:
        lines.append("")
        lines.append("Trigger events that started no run:")
        for item in report["notEntered"][-20:]:
            lines.append(f"  {item['event']} #{item['eventId']} at {_when(item['at'], tz)}: "
                         f"{item['text']}")
    return "\n".join(lines)
