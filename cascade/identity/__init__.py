"""Identity: Keystone-compatible Fernet keys and tokens."""
