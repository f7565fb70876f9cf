"""Supervised children of the daemon: specs, the state machine, restart policies, logs and figures.

The daemon builds one :class:`Supervisor` from :func:`builtin_specs` (plus any user-defined specs) and
drives it from the gRPC layer; nothing here knows about gRPC or the config module.
"""

from voicemoded.supervisor.builtin import BuiltinService, BuiltinSettings, builtin_specs
from voicemoded.supervisor.spec import (
    BackoffSettings,
    FlapSettings,
    HttpProbe,
    LogSettings,
    NotInstalled,
    RestartPolicy,
    ServiceSpec,
    TcpProbe,
)
from voicemoded.supervisor.states import ServiceState
from voicemoded.supervisor.stats import ExitInfo, ServiceStatus
from voicemoded.supervisor.supervisor import Supervisor

__all__ = [
    "BackoffSettings",
    "BuiltinService",
    "BuiltinSettings",
    "ExitInfo",
    "FlapSettings",
    "HttpProbe",
    "LogSettings",
    "NotInstalled",
    "RestartPolicy",
    "ServiceSpec",
    "ServiceState",
    "ServiceStatus",
    "Supervisor",
    "TcpProbe",
    "builtin_specs",
]
