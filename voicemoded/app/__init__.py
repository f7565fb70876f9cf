"""The application layer: one typed service per subsystem, the only thing the doors call.

Every rule a request is subject to lives here once: parameter defaults and checks, which kinds exist,
start-and-wait, install-then-refresh, what the assistant may change, and what a settings change does
to the running parts. The gRPC servicers (:mod:`voicemoded.rpc`) and the MCP session
(:mod:`voicemoded.mcp`) only translate between their wire format and these services, so both doors give
the same answer and the same error for the same request, and a later door adds no rules of its own.

The services take domain values and return them (``ServiceStatus``, ``EndpointStatus``, ``TurnResult``,
dataclasses of their own) and raise typed :class:`~voicemoded.api.errors.VoicemodeError` s; none of them
knows protobuf or JSON. :class:`~voicemoded.app.application.App` holds them, built in the composition
root (``voicemoded.__main__``).
"""
