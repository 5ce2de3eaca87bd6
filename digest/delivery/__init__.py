"""Who gets which mail, once: digest runs (`runs`) and what each delivery sends (`digests`),
notices, the shared claim state machine (`claims`), editors' announcements, privacy
requests and the operators' figures. Services take a Session; `sending` alone opens the
short transactions a send needs (no transaction across network I/O).

May import `digest.mail`, `digest.core` and `subscribers`; not `watch`, `web` or `commands`.
"""
