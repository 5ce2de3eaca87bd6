"""The editors' and admins' pages under /redaksjon: sign-in, announcements, review of
detected changes, preview and test sends, and the operator views. Every page needs a
signed-in editor (`SignedIn`); the operator views need an admin (`AdminOnly`)."""
