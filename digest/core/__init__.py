"""The small core every other room stands on: settings, the database engine, sessions and
a Dramatiq message's unit of work, the tables `digest` owns (with their status enums), the
stored topics, the broker, migrations, shipped paths, periods, text and HTML cleaning, and
the error root.

May import only `subscribers` and third-party libraries; nothing in `digest` outside core.
"""
