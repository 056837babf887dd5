"""HTTP: the FastAPI application, its routers and the one authentication dependency.

May import every capability package; nothing imports ``cascade.api`` but the CLI.
"""
