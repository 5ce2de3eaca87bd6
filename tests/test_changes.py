"""Change summaries: what changed, named by the nearest heading, in Norwegian."""

from __future__ import annotations

from digest.watch.changes import summarise_change

BEFORE = [
    ("", "Krisesentertilbudet skal gi beskyttelse."),
    ("Fysisk sikkerhet", "Krisesenteret skal ha alarm."),
    ("Den første samtalen", "Samtalen handler om hans eller hennes situasjon."),
    ("Den første samtalen", "Tolk skal brukes ved behov."),
]


def test_reworded_paragraph_is_named_by_its_heading() -> None:
    after = list(BEFORE)
    after[2] = ("Den første samtalen", "Samtalen handler om personens situasjon.")
    assert summarise_change(BEFORE, after) == "Endret tekst under «Den første samtalen»."


def test_added_and_removed_paragraphs() -> None:
    after = [*BEFORE[:2], ("Fysisk sikkerhet", "Det skal være kameraovervåking."), BEFORE[2]]
    summary = summarise_change(BEFORE, after)
    assert summary == (
        "Nytt avsnitt under «Fysisk sikkerhet»; Fjernet avsnitt under «Den første samtalen»."
    )


def test_new_section_and_new_declared_date() -> None:
    after = [*BEFORE, ("Samarbeid med barnevernet", "Krisesenteret skal melde fra.")]
    summary = summarise_change(
        BEFORE,
        after,
        old_declared="Sist faglig oppdatert 1. mars 2023",
        new_declared="Sist faglig oppdatert 14. november 2023",
    )
    assert summary == (
        "Ny del: «Samarbeid med barnevernet». Sist faglig oppdatert 14. november 2023."
    )


def test_many_changes_are_cut_short() -> None:
    after = [(f"Del {n}", f"Tekst {n}") for n in range(8)]
    summary = summarise_change(BEFORE, after)
    assert summary.count(";") == 4 and "andre endringer" in summary


def test_without_blocks_it_still_says_the_text_changed() -> None:
    assert summarise_change([], []) == "Endret tekst."
    assert summarise_change([], [], old_title="A", new_title="B") == "Ny tittel: «B»."
