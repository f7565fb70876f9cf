"""LiveKit: the server the daemon supervises (or a remote deployment), its credentials and its config.

Nothing here imports the ``livekit`` SDKs at module level: the daemon pays for them only when a room is
used.
"""
