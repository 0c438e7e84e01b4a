"""Thin routers, one per resource: they parse the request and call the service modules."""
