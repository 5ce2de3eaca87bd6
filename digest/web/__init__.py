"""The web app: public pages reached from mails, health and metrics."""
