"""The daemon's API: generated stubs (``v1``) and the client both front doors use.

Importing anything here pulls in grpc and protobuf only: never PyAudio, numpy, openai or the mcp SDK.
"""
