"""The people who receive digests: subscribers, their preferences, addresses and signed tokens.

This package is the lowest layer of the project and imports nothing from `digest`.
"""
