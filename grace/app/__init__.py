"""The composition root: the `grace` command and everything that wires stages together.

Only this package imports stage packages (producers, processors, actuators, projections,
control) and bench; the core (the rest of grace/) imports none of them.
"""
