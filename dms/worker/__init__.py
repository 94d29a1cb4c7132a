"""The worker side: the Celery app, `dms-worker`, the node bootstep (heartbeats, queues,
the receiver process), recovery from a broker restart, the janitor, and the data receiver.
"""
