"""Tasks chained after a sync keep their own Celery app: its queue and its broker.

`chain(dms.sync_signature(src, dst), notify.s())`, where `notify` belongs to the caller's own
Celery app: Celery publishes the whole chain with the first task's app, DMS's. dms.plan keeps
the chain out of the transfer messages and dms.finalize starts it. Publishing `notify` with
DMS's app would route it by DMS's settings: onto a DMS queue, whose workers drop it as
unregistered; and onto DMS's Redis, even when the caller's app uses another broker (another
Redis database), where no worker of the caller's ever looks.

So the signature sync_signature returns is a SyncSignature. When the chain is applied, it
stamps every task chained after it with the route that task's own app gives it: the queue
(its routes, or its app's default queue), and the app's broker URL when that is not DMS's
(`dms_broker`, a signature option of DMS's own). dms.finalize then publishes the next task
to that broker and queue (next_in_chain), and the caller's worker carries the rest of the
chain as usual. Tasks of DMS's own app (registered in DMS's workers with `-I`) keep DMS's
routing.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery
from celery.canvas import Signature

__all__ = ["BROKER_OPTION", "SyncSignature", "next_in_chain"]

#: The signature option that names the broker of a chained task's own app.
BROKER_OPTION = "dms_broker"


@Signature.register_type(name="dms_sync")
class SyncSignature(Signature):  # type: ignore[misc]
    """The signature of `dms.sync`: stamps the tasks chained after it with their own routes."""

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Any = None) -> SyncSignature:
        """Celery's own from_dict makes a plain Signature of a registered type's own dict: a
        chain's copy of this signature would lose apply_async."""
        return cls(d, app=app)

    def apply_async(self, args: Any = None, kwargs: Any = None, route_name: Any = None, **options: Any) -> Any:
        for step in options.get("chain") or ():
            if isinstance(step, Signature):
                stamp_own_route(step, self.app)
        return super().apply_async(args, kwargs, route_name, **options)


def stamp_own_route(step: Signature, dms_app: Any) -> None:
    """Give `step` the queue its own app routes it to, and its app's broker if not DMS's."""
    own = step._app  # the app the task was created with; None: a name only, DMS's to route
    if own is None or own is dms_app or step.options.get("queue"):
        return
    route = own.amqp.router.route(dict(step.options), step.task, step.args, step.kwargs)
    queue = route.get("queue")
    name = getattr(queue, "name", queue)
    if name:
        step.options["queue"] = name
    broker = own.conf.broker_url
    if broker and broker != dms_app.conf.broker_url:
        step.options[BROKER_OPTION] = broker


@functools.cache
def _publisher(broker: str) -> Celery:
    """A Celery app that only publishes, to a chained task's own broker."""
    return Celery("dms-chain", broker=broker, set_as_current=False)


def next_in_chain(chain: list[dict[str, Any]], dms_app: Any) -> Signature:
    """The chain's next task (the last of `chain`, which Celery keeps reversed; popped) bound
    to the app that publishes it: its own broker's, or DMS's. The rest loses the broker stamp:
    the caller's worker publishes it with its own app."""
    step = dict(chain.pop())
    options = dict(step.get("options") or {})
    broker = options.pop(BROKER_OPTION, None)
    step["options"] = options
    for rest in chain:
        (rest.get("options") or {}).pop(BROKER_OPTION, None)
    return Signature.from_dict(step, app=_publisher(broker) if broker else dms_app)
