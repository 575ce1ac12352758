# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Each creates the virtual environment in .venv on first use (plain venv and pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint i18n bench bench-faults mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Extract every message into bot/locales/messages.pot and update each catalogue (tools/i18n.py).
i18n: $(STAMP)
	$(BIN)/python tools/i18n.py $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.harness $(ARGS)

bench-faults: $(STAMP)
	$(BIN)/python -m benchmarks.faults $(ARGS)

# Mutation testing of the permission-critical code (not part of `make test`: it is slow). The
# scope and the tests it runs are in pyproject.toml's [tool.mutmut]; MUTANTS narrows it further
# (mutmut's name globs; every mutant they select is tested again, so one mutant's name re-tests
# just that one); verdicts stay in mutants/ (git-ignored), and the last step prints the
# per-module figures MUTATION.md records.
# mutmut runs mypy over the mutated copy first (`type_check_command`): the venv goes on PATH.
MUTANTS ?= 'bot.policy.*' 'bot.button_tokens.*' 'bot.cache.x*CacheKeys*' 'bot.cache.x__part*' \
	'bot.cache.x__identity*' 'bot.audit.*' 'bot.aep.errors.*' 'bot.listeners.*' 'bot.answers.*' \
	'bot.policy_file.*' 'bot.formatting.x_mrkdwn_*' 'bot.formatting.x_truncate*' \
	'bot.formatting.x_one_line*'
MUTANT_CHILDREN ?= 2
mutants: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" nice -n 19 $(BIN)/mutmut run $(MUTANTS) \
		--max-children $(MUTANT_CHILDREN)
	$(BIN)/python tools/mutation_figures.py $(MUTANTS)

clean:
	rm -rf $(VENV) mutants .pytest_cache .mypy_cache .ruff_cache build *.egg-info
