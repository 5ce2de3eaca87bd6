"""The people who receive digests: subscribers, their preferences, addresses and signed tokens.

This package is the lowest layer of the project and imports nothing from `digest`.
Its rooms, lowest first: `text`, `addresses`, `tokens`, `municipalities` (pure helpers);
`models` (the tables); `choices` (what a person chooses, checked; pure); `people`
(finding a person, their consent history, their preferences); `suppression` (addresses
never to be mailed again, bounces); `signups` (adding people, double opt-in, leaving);
`privacy` (access, erasure, retention); `roster` (CSV import and export).
"""
