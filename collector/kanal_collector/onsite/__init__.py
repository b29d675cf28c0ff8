"""On the shop's own pages: on-site messages, sign-up forms and web push subscriptions.

    campaigns.py  a campaign (onsite/*.yaml): layout, page rules, audience, show, arms
    catalog.py    the campaign files of a directory, checked and reloaded
    content.py    a message's `onsite:` content rendered for a visitor, sanitised
    access.py     which profile a browser may see (its own anonymous one, or userHash)
    pull.py       one page view's messages: journey-queued ones claimed, campaigns matched
    events.py     shown / clicked / dismissed / held out / form submitted, as events
    forms.py      sign-up form checks and the double opt-in confirmation
    confirm.py    the worker that sends confirmations (and expires queued messages)
    pushclick.py  tracked clicks of web push notifications (a before_send hook)
    signing.py    the signed tickets handed to the browser
    settings.py   `[onsite]` of kanal.toml, and the web push key the pages subscribe with
    step.py       the processor step keeping who saw which arm of a campaign
    report.py     the campaigns' experiments report
    routes.py     /onsite/… routes

The snippet (js_snippet/src/kanal.js) only loads the on-site code (src/onsite.js, served
as /kanal-onsite.js) when the site document says something is on. docs/onsite.md is
the user's reference.
"""

from __future__ import annotations

from .campaigns import Campaign, CampaignError, parse_campaign
from .catalog import Campaigns, load_directory
from .confirm import ConfirmationWorker
from .routes import onsite_blueprint
from .settings import OnsiteSettings
from .step import OnsiteStep

__all__ = [
    "Campaign",
    "CampaignError",
    "Campaigns",
    "ConfirmationWorker",
    "OnsiteSettings",
    "OnsiteStep",
    "load_directory",
    "onsite_blueprint",
    "parse_campaign",
]
