"""Masking text quoted from configuration files, so an error about a line never carries its secret.

A rejected line is quoted to help the person find it (``OPENAI_API_KEY: sk-…`` with a colon for the
equals sign), but that line is exactly where a key sits, and errors travel far: ``status``, ``config
show``, events, ``doctor`` and the MCP door. So a quote keeps the shape of the line and loses every value
that looks like a credential, and any value on a line whose key part names a key, secret, token or
password, whatever that value looks like.
"""

from __future__ import annotations

import re

MASK = "****"

#: A key part that says the value is a credential (OPENAI_API_KEY, LIVEKIT_API_SECRET, GH_TOKEN, ...).
SECRET_NAME = re.compile(r"(key|secret|token|passw(or)?d|pwd|auth|credential)", re.IGNORECASE)

# Values that look like credentials even when nothing names them: vendor prefixes, bearer tokens,
# JWTs, long hex, and long mixed letter-and-digit runs (API keys are rarely dictionary words).
_SHAPES = re.compile(
    r"(?:sk|pk|rk|gh[pousr]|xox[abpr]|glpat|AKIA)[-_A-Za-z0-9]{8,}"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-.]+"
    r"|\b[0-9a-fA-F]{20,}\b"
)
_LONG_RUN = re.compile(r"[A-Za-z0-9_+/=.\-]{16,}")
# Where the key part of a malformed line ends: the first separator a person might have used for "=".
_KEY_PART = re.compile(r"^\s*(?:export\s+)?([^\s=:]*)(\s*[=:]?\s*)(.*)$", re.DOTALL)
# URL credentials: http://user:password@host
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _looks_random(run: str) -> bool:
    """Letters and digits mixed, as generated keys are; paths and words are left readable."""
    has_digit = any(c.isdigit() for c in run)
    has_alpha = any(c.isalpha() for c in run)
    return has_digit and has_alpha and "/" not in run.strip("/")


def mask_shapes(text: str) -> str:
    """``text`` with every credential-looking value replaced by a mask."""
    text = _URL_USERINFO.sub(MASK + "@", text)
    text = _SHAPES.sub(MASK, text)
    return _LONG_RUN.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), text)


def mask_line(text: str) -> str:
    """A rejected line as it may be quoted: its key part kept, secret-looking values masked.

    When the key part names a credential (``OPENAI_API_KEY: sk-…``, ``password hunter2``) nothing after it
    is shown at all, since a short or unusual secret has no shape to recognise.
    """
    match = _KEY_PART.match(text)
    if match is None:  # pragma: no cover - the pattern matches every string
        return mask_shapes(text)
    key, separator, rest = match.groups()
    if SECRET_NAME.search(key) and rest:
        return f"{mask_shapes(key)}{separator}{MASK}"
    if SECRET_NAME.search(rest.split("=", 1)[0].split(":", 1)[0]) and ("=" in rest or ":" in rest):
        # "# OPENAI_API_KEY=sk-..." style: a second key part later on the line.
        head, sep, _ = re.split(r"([=:])", rest, maxsplit=1)
        return f"{mask_shapes(key)}{separator}{mask_shapes(head)}{sep}{MASK}"
    return mask_shapes(text)


def quote_line(text: str, limit: int = 60) -> str:
    """The masked line, shortened, in a form that shows control characters instead of acting on them."""
    masked = mask_line(text)
    if len(masked) > limit:
        masked = masked[:limit] + "…"
    return repr(masked)
