"""The front doors' contract: generated stubs (``v1``), the typed client both front doors use, and the
few modules they share with the daemon (socket and state paths, typed errors, the audio file writer).

Importing anything here pulls in grpc and protobuf only: never PyAudio, numpy, openai or the mcp SDK.
PyAV is imported only when a compressed audio file is written (``audio_file``).
"""
