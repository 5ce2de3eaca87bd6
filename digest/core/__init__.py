"""The small core every other room stands on: settings, database engine and sessions, the
tables `digest` owns, the broker, migrations, shipped paths, periods, text and HTML
cleaning, and the error root.

May import only `subscribers` and third-party libraries; nothing in `digest` outside core.
"""
