"""The web app, an entry point: public pages reached from mails, health and metrics.

May import every room below it (`delivery`, `mail`, `watch`, `core`) and `subscribers`.
"""
