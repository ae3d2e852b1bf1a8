"""The operator's side of Grace: holds, approvals and denials from the command line.

Publishes only people's events (category `operator`) and reads hold/approval state from
the log itself, so it works without a projector and after any restart.
"""
