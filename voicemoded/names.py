"""What a service's name may look like, for the supervisor and the settings alike (no imports, so both
can use it without importing each other)."""

from __future__ import annotations

import re

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Any service's name, a plugin's too: it is also a file name under services/."""
