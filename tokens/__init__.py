"""Personal API tokens: clients that are not browsers authenticate WebSockets and the HTTP endpoints."""
