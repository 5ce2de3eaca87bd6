"""Who gets which mail, once: digest runs and deliveries, notices, the shared claim state
machine, editors' announcements, privacy requests and the operators' figures.

May import `digest.mail`, `digest.core` and `subscribers`; not `watch`, `web` or `commands`.
"""
