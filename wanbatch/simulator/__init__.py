"""The Wan API simulator (being built)."""
