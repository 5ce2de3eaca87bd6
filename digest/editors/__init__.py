"""The editors' and admins' accounts: passwords, browser sessions, failed sign-ins, API
tokens, and the audit log of what they did. Imports `core` and `subscribers` only; the
web pages, the API and the `digest editors` commands build on it."""
