"""``dlopt.optim.lr_scheduler``, where torch users look for it: the schedulers of :mod:`dlopt.lr_scheduler`."""

from ..lr_scheduler import *  # noqa: F401,F403
from ..lr_scheduler import __all__  # noqa: F401
