"""providers subsystem of voicemoded."""
