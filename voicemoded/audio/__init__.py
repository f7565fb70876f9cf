"""audio subsystem of voicemoded."""
