"""gRPC servicers: pure translations between the API messages and the application layer (:mod:`voicemoded.app`)."""
