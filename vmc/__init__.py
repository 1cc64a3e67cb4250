"""vmc: see README."""
