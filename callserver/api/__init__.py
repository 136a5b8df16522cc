"""The HTTP speech API and its OpenAPI description."""
