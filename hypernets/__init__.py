"""hypernets: see README."""
