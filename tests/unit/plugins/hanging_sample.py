"""A plugin module whose import blocks, as one waiting on a network call or a lock does."""

import threading

threading.Event().wait(30)
