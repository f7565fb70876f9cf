"""mcp subsystem of voicemoded."""
