"""Veiledervarsel: watches Norwegian guidance sites and mails digests of what changed."""

SERVICE_NAME = "Veiledervarsel"
__version__ = "0.1.0"
