"""From a digest's content to a mail: compose (pure), render (Jinja2, locale), build the
message, send it (SMTP or outbox), and the signed links a mail carries.

May import `digest.core` and `subscribers`; knows nothing of runs, the watchers or the web.
"""
