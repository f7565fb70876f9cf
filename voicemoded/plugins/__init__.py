"""Extension points: an installed package adds services, speech providers or MCP tools to voicemode.

A package declares entry points in one of three groups (in its ``pyproject.toml``)::

    [project.entry-points."voicemode.services"]
    mine = "my_package:service"        # a ServicePlugin, or a no-argument factory of one
    [project.entry-points."voicemode.providers"]
    mine = "my_package:provider"       # a ProviderPlugin
    [project.entry-points."voicemode.tools"]
    mine = "my_package:tool"           # a ToolPlugin

and builds them from :mod:`voicemoded.plugins.api`. The daemon loads them when it starts
(``VOICEMODE_PLUGINS``: ``all``, ``none`` or a list of entry-point names) and ``voicemodectl status``
lists each with its state; one that fails to load is reported and skipped. Importing this package
imports nothing, so the configuration can read ``VOICEMODE_PLUGINS`` without loading the supervisor.
"""
