# Two commands on a fresh machine: `make run` and `make test`.
# Each makes its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test golden bench bench-deliver clean messages catalogues check-messages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP) catalogues
	$(BIN)/digest run

test: $(STAMP) catalogues
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# Rewrite the golden messages in tests/golden/ after a deliberate change to a template or
# a message; review the diff before committing it.
golden: $(STAMP)
	DIGEST_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py

# Translations (templates/locale/): after changing a message, `make messages` extracts
# every domain's .pot and updates the nn and en .po files; translate what it added, then
# `make catalogues` compiles them (run and test do that too) and `make check-messages`
# lists what still lacks a translation.
messages: $(STAMP)
	$(BIN)/digest messages extract

catalogues: $(STAMP)
	$(BIN)/digest messages compile >/dev/null

check-messages: $(STAMP)
	$(BIN)/digest messages check

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.collect
	$(BIN)/python -m bench.import_roster
	$(BIN)/python -m bench.sign_in_burst

# Delivery (issue 10): needs PostgreSQL on 127.0.0.1:5432, redis-server and Postfix's
# smtp-sink (apt-get install postfix; the MTA itself is not started). See bench/RESULTS.md.
bench-deliver: $(STAMP)
	$(BIN)/python -m bench.deliver --subscribers 5000 20000 --repeat 3

clean:
	rm -rf $(VENV) var
