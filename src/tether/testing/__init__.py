"""Test helpers for tether and its users: the fake Messages API, scripted behaviours, faults.

Never import this from non-test code.
"""

from tether.testing.fake import *  # noqa: F403
from tether.testing.fake import __all__ as __all__
