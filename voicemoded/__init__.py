"""voicemoded: the voicemode daemon. Importing this package imports nothing heavy."""

from voicemoded._version import __version__

__all__ = ["__version__"]
