"""The HTTP surface: thin routers, request and response schemas, errors as JSON, the Annotated
dependencies, and the access and body-size middleware."""
