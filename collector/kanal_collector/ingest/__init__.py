"""Ingest: authenticate → validate → enrich → dedupe → append (the /v1 routes).

body (limits, strict JSON) → spec (the Segment Spec) → enrich (time, user agent, IP,
campaign, origin, verified identity) → writer (group commit into the event log).
"""
