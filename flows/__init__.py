"""flows: see README."""
