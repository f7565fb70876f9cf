"""voicemodectl config: show, get, set, unset, path, edit."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess

from voicemodectl import output
from voicemoded.api.client import Client
from voicemoded.api.context import current_cwd
from voicemoded.api.paths import PROJECT_FILE_NAME, Paths
from voicemoded.api.v1 import daemon_pb2

_HEADER = """# voicemode user configuration: KEY=value, one per line.
# `voicemodectl config show` lists every setting with its current value and where it came from.
# A project's .voicemode.env and your environment override what is set here.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show and change settings")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="every setting, its effective value and where it came from")
    show.add_argument("--changed", action="store_true", help="only settings that differ from the default")
    show.set_defaults(func=show_cmd)
    get = verbs.add_parser("get", help="one setting's effective value")
    get.add_argument("key")
    get.set_defaults(func=get_cmd)
    set_ = verbs.add_parser(
        "set", help="write a setting to the user (or project) file, keeping its other lines"
    )
    set_.add_argument("key")
    set_.add_argument("value")
    set_.add_argument("--scope", choices=["user", "project"], default="user")
    set_.set_defaults(func=set_cmd)
    unset = verbs.add_parser("unset", help="remove a setting from the user (or project) file")
    unset.add_argument("key")
    unset.add_argument("--scope", choices=["user", "project"], default="user")
    unset.set_defaults(func=unset_cmd)
    path = verbs.add_parser("path", help="where the configuration files are (works without the daemon)")
    path.set_defaults(func=path_cmd, needs_daemon=False)
    reload = verbs.add_parser("reload", help="re-read the configuration files now")
    reload.set_defaults(func=reload_cmd)
    edit = verbs.add_parser("edit", help="open the user file in $EDITOR, then report any error in it")
    edit.add_argument("--scope", choices=["user", "project"], default="user")
    edit.set_defaults(func=edit_cmd)


def _location(value: daemon_pb2.ConfigValue) -> str:
    return f"{value.layer} {value.file}:{value.line}" if value.file else value.layer


def show_cmd(args: argparse.Namespace, client: Client) -> int:
    snapshot = client.get_config()
    values = [v for v in snapshot.values if not args.changed or v.layer != "default"]
    if args.json:
        data = output.to_dict(snapshot)
        data["values"] = [output.to_dict(v) for v in values]
        output.print_json(data)
        return output.OK
    print(output.table([(v.key, v.value, _location(v)) for v in values], ["KEY", "VALUE", "FROM"]))
    if snapshot.errors:
        print("\nerrors (the last good configuration is in force):")
        for e in snapshot.errors:
            print(f"  {e.key or 'line'} at {e.file}:{e.line}: {e.reason}")
        return output.INVALID
    return output.OK


def get_cmd(args: argparse.Namespace, client: Client) -> int:
    value = client.get_config([args.key]).values[0]
    if args.json:
        output.print_json(value)
    else:
        print(value.value)
    return output.OK


def set_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.set_config(args.key, args.value, args.scope)
    if args.json:
        output.print_json(response)
        return output.OK
    print(f"{response.value.key}={response.value.value}  ({response.file}:{response.line})")
    if response.value.layer != args.scope:
        print(f"note: the effective value comes from {_location(response.value)}, which takes precedence")
    return output.OK


def unset_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.unset_config(args.key, args.scope)
    if args.json:
        output.print_json(response)
        return output.OK
    print(
        f"removed from {response.file}; now {response.value.key}={response.value.value} ({_location(response.value)})"
    )
    return output.OK


def _project_file() -> str:
    from pathlib import Path

    cwd = current_cwd()
    if not cwd:
        return ""
    for folder in (Path(cwd), *Path(cwd).parents):
        if (folder / PROJECT_FILE_NAME).is_file():
            return str(folder / PROJECT_FILE_NAME)
    return ""


def path_cmd(args: argparse.Namespace, client: Client | None) -> int:
    paths = Paths.from_env(socket=args.socket)
    data = {
        "user": str(paths.user_file),
        "project": _project_file(),
        "socket": str(paths.socket),
        "base_dir": str(paths.base),
    }
    if args.json:
        output.print_json(data)
    else:
        for key, value in data.items():
            print(f"{key + ':':9} {value or '(none)'}")
    return output.OK


def _report_reload(args: argparse.Namespace, response: daemon_pb2.ReloadConfigResponse) -> int:
    if args.json:
        output.print_json(response)
    elif response.errors:
        for e in response.errors:
            print(f"error: {e.key or 'line'} at {e.file}:{e.line}: {e.reason}")
        print("the last good configuration stays in force until this is fixed")
    else:
        print(f"reloaded; changed: {', '.join(response.changed_keys) or 'nothing'}")
    return output.INVALID if response.errors else output.OK


def reload_cmd(args: argparse.Namespace, client: Client) -> int:
    return _report_reload(args, client.reload_config())


def edit_cmd(args: argparse.Namespace, client: Client) -> int:
    if args.scope == "project":
        path = _project_file() or os.path.join(current_cwd(), PROJECT_FILE_NAME)
    else:
        path = str(Paths.from_env().user_file)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_HEADER)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    rc = subprocess.call([*shlex.split(editor), path])
    if rc != 0:
        print(f"voicemodectl: the editor exited with {rc}")
        return output.ERROR
    if args.scope == "project":
        # Project files are read per call: resolving the config validates the edited file.
        client.get_config()
        print(f"{path} is valid")
        return output.OK
    return _report_reload(args, client.reload_config())
