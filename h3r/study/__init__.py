"""The study: one module per claim, each holding the claim's design (which runs answer it), its
numbers and its tables and sentences; the verdicts' rules are :mod:`h3r.stats`'s, the figures
:mod:`h3r.viz`'s.

====================  ===========================================================================
:mod:`.theory`        chapters 1-2 at a glance: linear growth, unbiased, lossless (Monte Carlo)
:mod:`.training`      chapter 4: how the networks are trained, the schedule search, learning curves
:mod:`.resolution`    chapter 5: accuracy against heatmap resolution, matched families, target errors
:mod:`.ablations`     chapter 6: activation points, target shape, the two-channel head, the mechanism
:mod:`.cost`          chapter 7: accuracy against input size, parameters, MACs, training speed
:mod:`.answers`       chapter 13: H3R beside SimCC, soft-argmax, DSNT, RLE and a local soft-argmax
:mod:`.search`        chapter 13: the schedule search every family is tuned by; SimCC taken apart
:mod:`.questions`     chapter 14: questions people ask about H3R; the expected target by stride
:mod:`.pose`          chapter 15: chapter 5's design on the pose benchmark, PCKh and OKS AP
:mod:`.findings`      the findings page: every claim, its key numbers and verdict
====================  ===========================================================================
"""
