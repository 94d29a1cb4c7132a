"""What a submitting process loads: submit, wait, cancel and resume a request; connect to
the control plane (configured, or the embedded default it starts); stop what it started.

Kept light on purpose: a `dms-submit` run imports this package, not the Celery app, kombu
or redis-py, wherever the plain Redis client serves (dms.state.resp).
"""
