"""Predictive scores: who is about to leave, who will buy again, and what they are worth.

    data.py          customers' purchase days and values, from profile states
    rfm.py           recency / frequency / monetary scores and lifecycle stages
    bgnbd.py         BG/NBD: future purchases and P(active)             (numpy, scipy)
    gammagamma.py    Gamma-Gamma: spend per purchase                    (numpy, scipy)
    scores.py        per-person scores; the minimum data for the models (numpy, scipy)
    calibration.py   fit on a training period, compare with the holdout  (numpy, scipy)

The modules marked (numpy, scipy) are imported only where a fit or a scoring runs: in
`kanal predict …` and in the fit's own process, never in the serving process.
"""

from __future__ import annotations
