"""The scheduler policy API for plugin authors: a stable import path.

The policies live in dms.route.policies; a third-party policy subclasses SchedulerPolicy
from here and registers itself in the "dms.scheduler_policies" entry-point group.
"""

from dms.route.policies import *  # noqa: F403  (re-exported whole, so the two never drift)
from dms.route.policies import __all__ as __all__
