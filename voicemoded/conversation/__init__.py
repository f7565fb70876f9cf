"""conversation subsystem of voicemoded."""
