"""Every Redis key and every Redis call DMS makes, and nothing else.

requests: a request's record, shards, units, progress and events; nodes: heartbeats, NIC
load, routes and the janitor's bookkeeping; walks: the fanned-out walk; broker: kombu's
own keys where DMS must touch them; messages: publishing a task message without the
Celery app; resp: the small Redis client of submitting processes.
"""
