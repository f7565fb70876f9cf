"""voicemodectl: the command line for the voicemode daemon. Parses, calls the daemon, prints."""
