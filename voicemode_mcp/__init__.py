"""voicemode-mcp: the stdio <-> gRPC tunnel an MCP client launches. Standard library, grpc and stubs only."""
