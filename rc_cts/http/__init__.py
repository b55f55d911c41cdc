"""The HTTP front: the server (h11 on circuits sockets), the protocol's endpoints, request
bodies, authentication, and the protocol's data."""
