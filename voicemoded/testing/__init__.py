"""Test and demo gear: never imported by the daemon or the front doors.

What the tests, the benchmarks and the demo share lives here, so none of them reaches into another's
folder: the virtual audio rig (``rig``), the scripted person (``person``), a real daemon on a temp
socket (``daemon``) and a loopback speech endpoint for it (``endpoint``), engine servers as children
(``engines``), the supervisor's test children (``children``), the load generator (``load``), the gRPC
fuzzer's request strategies (``fuzz``), raw MCP messages (``jsonrpc``), a real livekit-server on free
ports (``livekit``), a real redis-server for several of them (``redis``) and the demo itself (``demo``).

Importing this package imports nothing; each module pulls in only what it needs (``fuzz`` needs
hypothesis, a development dependency). A unit test holds that nothing outside the tests, the
benchmarks and this package imports it.
"""
