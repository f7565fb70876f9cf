"""voicemode-web: the browser's front door. A small HTTP server in front of the daemon's socket that
serves the page (dashboard, history, talk) and a JSON API over the typed client, and nothing else.

Like the other doors it is stateless and talks to the daemon only through ``voicemoded.api``. It answers
loopback Host names only (a page elsewhere cannot reach it by DNS rebinding), refuses foreign origins,
sends no CORS headers, and takes the per-install token (``voicemodectl web url``) for every change.
"""
