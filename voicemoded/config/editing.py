"""The checks that stand between a ``config set`` request and a file on disk.

An edit arrives from any front door, including an assistant's, so everything in it is untrusted: a key or
value with a line break would write a second line of the caller's choosing (an STT endpoint, say); a
project folder that does not exist would be created by the daemon; a file that cannot be written must
say which file and why instead of surfacing as a bug.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from voicemoded.api.errors import (
    DENIED_ERRNOS,
    NO_SPACE_ERRNOS,
    FailedPrecondition,
    InvalidArgument,
    VoicemodeError,
    from_os_error,
    quote,
)
from voicemoded.config import envfile
from voicemoded.config.layers import trusted_owner


def check_text(field: str, text: str) -> None:
    """Refuse control and line-break characters in a key or value, naming the field and the character."""
    found = envfile.control_character(text)
    if found is not None:
        position, code = found
        raise InvalidArgument(
            f"{field} contains the control character {code} at position {position}; "
            "configuration values are one line of printable text",
            hint=f"remove it from the {field} (a line break would start another setting in the file)",
            fields={"field": field, "position": str(position), "character": code},
        )


def project_folder(cwd: str) -> Path:
    """The caller's folder for a project-scope edit: absolute, existing, a folder, owned by this user.

    The daemon never creates it: a front door sends the folder it runs in, which exists, so anything
    else is a mistake or an attempt to make the daemon write where the caller could not.
    """
    if not cwd:
        raise InvalidArgument(
            "caller.cwd is empty: project scope needs the caller's working directory",
            hint="run the command inside the project, or use --scope user",
            fields={"field": "caller.cwd"},
        )
    check_text("caller.cwd", cwd)
    if not os.path.isabs(cwd):
        raise InvalidArgument(
            f"caller.cwd must be an absolute path, got {quote(cwd)}",
            hint="front doors send os.getcwd(); a relative path would name a folder of the daemon's",
            fields={"field": "caller.cwd"},
        )
    folder = Path(cwd)
    try:
        info = folder.stat()
    except FileNotFoundError:
        raise InvalidArgument(
            f"caller.cwd {quote(cwd)} does not exist",
            hint="run the command inside an existing project folder; the daemon creates no folders",
            fields={"field": "caller.cwd"},
        ) from None
    except OSError as exc:
        raise _os_error(exc, folder, "use") from None
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidArgument(
            f"caller.cwd {quote(cwd)} is not a folder",
            hint="run the command inside the project folder",
            fields={"field": "caller.cwd"},
        )
    if not trusted_owner(info.st_uid):
        raise FailedPrecondition(
            f"{quote(cwd)} belongs to uid {info.st_uid}, not to you: no project file is written there",
            hint="use --scope user, or a project folder you own",
            fields={"field": "caller.cwd"},
        )
    return folder


def ensure_user_folder(path: Path) -> None:
    """The base folder is the daemon's own; it is created private when it is missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _os_error(exc, path.parent, "create") from None


def write(path: Path, key: str, value: str | None) -> int:
    """Set or remove ``key`` in ``path``; environment faults become errors naming the file and the fix."""
    try:
        return envfile.set_key(path, key, value)
    except envfile.UnreadableFile as exc:
        raise FailedPrecondition(
            f"cannot edit {path}: {exc.reason}",
            hint="fix the file, then try again",
            fields={"file": str(path)},
        ) from None
    except ValueError as exc:
        raise InvalidArgument(str(exc), fields={"file": str(path)}) from None
    except OSError as exc:
        raise _os_error(exc, path, "write") from None


def _os_error(exc: OSError, path: Path, doing: str) -> VoicemodeError:
    """The typed error for a file fault, about the configuration file (not the temporary one beside it)."""
    typed = from_os_error(exc)
    reason = exc.strerror or type(exc).__name__
    fields = {"file": str(path), "errno": errno.errorcode.get(exc.errno or 0, "")}
    if typed is None:
        return FailedPrecondition(
            f"cannot {doing} {path}: {reason}", hint="check the file and its folder", fields=fields
        )
    if exc.errno in NO_SPACE_ERRNOS:
        hint = (
            f"free some disk space where {path.parent} is, then run the command again; the file is unchanged"
        )
    elif exc.errno == errno.EROFS:
        hint = f"{path.parent} is on a read-only file system; set VOICEMODE_BASE_DIR to a writable folder"
    elif exc.errno in DENIED_ERRNOS:
        hint = f"make {path.parent} and {path.name} yours and writable (ls -ld {path.parent}; chmod u+w)"
    else:
        hint = typed.hint
    return type(typed)(f"cannot {doing} {path}: {reason}", hint=hint, fields=fields)
