"""engines subsystem of voicemoded."""
