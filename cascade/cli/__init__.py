"""The ``cascade`` command (Typer + Rich). May import every package; nothing imports it."""
