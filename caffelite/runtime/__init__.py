"""Where layer math runs (split by concern in the next commit)."""
from .pool import *  # noqa: F401,F403
