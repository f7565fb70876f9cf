"""A plugin module whose import fails, as one with a missing dependency does."""

import frobnicate_not_installed  # type: ignore[import-not-found]  # noqa: F401
