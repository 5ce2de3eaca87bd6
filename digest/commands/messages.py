"""`digest messages extract|compile|check`: the gettext catalogues under templates/locale/,
one domain per part of the service, extracted from its files by Babel.

extract: each domain's messages into templates/locale/<domain>.pot, and each language's
<lang>/LC_MESSAGES/<domain>.po updated from it (made when missing), for translators' tools.
compile: each .po into its .mo, which the service reads (it compiles a .po itself when its
.mo is missing or older). check: lists the messages that lack a translation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from digest.core.i18n import DOMAINS, LANGUAGES, SOURCE, locale_dir

# Which files each domain's messages come from (globs from the project's top folder).
# Every template and every module of digest/web is in exactly one (tests/test_translations.py).
SOURCES: dict[str, tuple[str, ...]] = {
    "mail": (
        "digest/core/i18n.py",
        "digest/mail/*.py",
        "digest/delivery/*.py",
        "templates/email/*",
    ),
    "public": ("digest/web/*.py", "subscribers/*.py", "templates/web/*.html"),
    "archive": ("digest/web/archive/*.py", "templates/web/archive/*"),
    "editor": (
        "digest/web/admin/__init__.py",
        "digest/web/admin/auth.py",
        "digest/web/admin/common.py",
        "digest/web/admin/announcement_form.py",
        "digest/web/admin/announcements.py",
        "digest/web/admin/changes.py",
        "digest/web/admin/preview.py",
        "digest/web/admin/uploads.py",
        "digest/delivery/announcement_checks.py",
        "templates/web/admin/base.html",
        "templates/web/admin/sign_in.html",
        "templates/web/admin/message.html",
        "templates/web/admin/announcement*.html",
        "templates/web/admin/change*.html",
        "templates/web/admin/preview.html",
    ),
    "operator": (
        "digest/web/admin/sources.py",
        "digest/web/admin/runs.py",
        "digest/web/admin/subscribers.py",
        "digest/web/admin/editors.py",
        "digest/web/admin/audit.py",
        "digest/web/admin/tokens.py",
        "digest/web/api/*.py",
        "templates/web/admin/sources.html",
        "templates/web/admin/run*.html",
        "templates/web/admin/subscriber*.html",
        "templates/web/admin/roster.html",
        "templates/web/admin/editor*.html",
        "templates/web/admin/audit.html",
        "templates/web/admin/tokens.html",
        "templates/web/api/*",
    ),
}
assert tuple(SOURCES) == DOMAINS
TRANSLATED = tuple(language for language in LANGUAGES if language != SOURCE)
# Besides gettext's own names: digest.core.i18n's translate(language, message) and
# translate_plural(language, singular, plural, n).
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "translate": (2,), "translate_plural": (2, 3)}
# As the service's Jinja environments read them (digest.core.i18n.install): trans blocks
# trimmed, gettext calls newstyle.
_JINJA_OPTIONS = {"trimmed": "true", "newstyle_gettext": "true", "silent": "false"}


def project_dir() -> Path:
    return locale_dir().parent.parent


def files_of(domain: str) -> list[Path]:
    """A domain's files: those its globs match, less any another domain names itself."""
    root = project_dir()
    named_elsewhere = {
        root / pattern
        for other, patterns in SOURCES.items()
        if other != domain
        for pattern in patterns
        if not any(c in pattern for c in "*?[")
    }
    found = {path for pattern in SOURCES[domain] for path in root.glob(pattern)}
    return sorted(
        p
        for p in found
        if p.is_file() and p.suffix in (".py", ".html", ".txt") and p not in named_elsewhere
    )


def _method(path: Path) -> str:
    return "python" if path.suffix == ".py" else "jinja2.ext:babel_extract"


def _extracted(path: Path) -> Iterator[tuple[int, str | tuple[str, ...], list[str], str | None]]:
    options = {} if path.suffix == ".py" else _JINJA_OPTIONS
    yield from extract_from_file(_method(path), str(path), keywords=KEYWORDS, options=options)


def template(domain: str) -> Catalog:
    """A domain's messages as extracted from its files now."""
    catalog = Catalog(domain=domain, project="digest", charset="utf-8", fuzzy=False)
    catalog.creation_date = datetime(2024, 1, 1, tzinfo=UTC)  # no churn in the .pot
    root = project_dir()
    for path in files_of(domain):
        for lineno, message, comments, context in _extracted(path):
            catalog.add(
                message,
                None,
                [(str(path.relative_to(root)), lineno)],
                auto_comments=comments,
                context=context,
                flags=("python-format",) if _has_format(message) else (),
            )
    return catalog


def _has_format(message: str | tuple[str, ...]) -> bool:
    texts = message if isinstance(message, tuple) else (message,)
    return any("%(" in text for text in texts)


def po_path(language: str, domain: str) -> Path:
    return locale_dir() / language / "LC_MESSAGES" / f"{domain}.po"


def read_catalog(path: Path, language: str, domain: str) -> Catalog:
    with path.open("rb") as fp:
        return read_po(fp, locale=language, domain=domain)


def _write(path: Path, catalog: Catalog) -> None:
    # A fuzzy header would be left out of the .mo, and with it the charset and plural rule.
    catalog.fuzzy = False
    catalog.last_translator = "Veiledervarsel"
    catalog.copyright_holder = "Veiledervarsel"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fp:
        write_po(fp, catalog, width=100, sort_output=False, include_previous=True)


def missing(language: str, domain: str) -> list[str]:
    """The messages of `domain` (as its files hold them now) with no translation, or only
    a fuzzy one, in `language`; and those whose %(name)s placeholders differ."""
    path = po_path(language, domain)
    own = read_catalog(path, language, domain) if path.exists() else Catalog(locale=language)
    problems = []
    for message in template(domain):
        if not message.id:
            continue
        found: Message | None = own.get(message.id, message.context)
        key = message.id if isinstance(message.id, str) else message.id[0]
        if found is None or found.fuzzy:
            problems.append(f"{language}/{domain}: no translation of {key!r}")
            continue
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        if not all(strings):
            problems.append(f"{language}/{domain}: empty translation of {key!r}")
        elif _placeholders(message.id) != set().union(*(_placeholders(s) for s in strings)):
            problems.append(f"{language}/{domain}: other placeholders in {key!r}")
    return problems


def _placeholders(text: object) -> set[str]:
    texts = text if isinstance(text, tuple | list) else (text,)
    return {name for t in texts if isinstance(t, str) for name in re.findall(r"%\((\w+)\)", t)}


@click.group()
def messages() -> None:
    """The translations: extract, compile and check the catalogues in templates/locale/."""


@messages.command()
@click.option(
    "--domain",
    "domains",
    multiple=True,
    type=click.Choice(DOMAINS),
    help="Only this domain (repeatable); all by default.",
)
def extract(domains: tuple[str, ...]) -> None:
    """Extract each domain's messages into its .pot and update each language's .po."""
    for domain in domains or DOMAINS:
        fresh = template(domain)
        _write(locale_dir() / f"{domain}.pot", fresh)
        for language in TRANSLATED:
            path = po_path(language, domain)
            if path.exists():
                catalog = read_catalog(path, language, domain)
            else:
                catalog = Catalog(locale=language, domain=domain, project="digest")
            catalog.update(fresh, no_fuzzy_matching=True)
            catalog.obsolete.clear()  # a message that is gone is gone; git keeps history
            _write(path, catalog)
        click.echo(f"{domain}: {len(fresh)} messages")


@messages.command(name="compile")
def compile_() -> None:
    """Compile each .po into the .mo the service reads."""
    for language in TRANSLATED:
        for domain in DOMAINS:
            path = po_path(language, domain)
            if not path.exists():
                continue
            catalog = read_catalog(path, language, domain)
            with path.with_suffix(".mo").open("wb") as fp:
                write_mo(fp, catalog)
            click.echo(f"{language}/{domain}: {len(catalog)} messages")


@messages.command()
def check() -> None:
    """List the messages that lack a translation; exit 1 if any does."""
    problems = [p for lang in TRANSLATED for d in DOMAINS for p in missing(lang, d)]
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo("every message is translated")
