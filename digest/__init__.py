"""Veiledervarsel: watches Norwegian guidance sites and mails digests of what changed.

The rooms, top to bottom; imports point down, never up or sideways between watch and mail:

    commands/  web/  actors.py  scheduler.py    entry points: own the unit of work
    delivery/                                   runs, deliveries, notices, announcements
    mail/            watch/                     digest -> message -> send; site -> items
    core/                                       settings, db, models, broker, periods, errors
    subscribers (its own package)               the people; imports nothing from digest
"""

SERVICE_NAME = "Veiledervarsel"
__version__ = "0.1.0"
