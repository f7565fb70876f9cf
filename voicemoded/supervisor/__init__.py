"""supervisor subsystem of voicemoded."""
