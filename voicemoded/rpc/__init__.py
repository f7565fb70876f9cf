"""gRPC servicers: thin translations between the API messages and the daemon's subsystems."""
