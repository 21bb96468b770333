# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock | cut -c1-12)

.PHONY: install system-packages run test test-unit call records barge-in false-barge-in faults bench call-cost turns lint load-balancer

$(STAMP): requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## run the bot server (reads .env / the environment; see README)
run: $(STAMP)
	$(PY) bot.py serve

## run the whole test suite, offline: unit tests and real-time calls, in parallel processes
## (the calls mostly wait on the clock, so more processes than cores pays)
TEST_WORKERS ?= 3
test: $(STAMP) system-packages
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

## only the unit tests (no real-time calls): about a minute
test-unit: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not call" $(ARGS)

## Debian packages the tests need (PostgreSQL, Chromium), if missing
system-packages:
	tools/system_packages.sh

## a simulated phone call against local stand-ins
call: $(STAMP)
	$(PY) bot.py call --offline $(ARGS)

## a call with a barge-in on record (SQLite, PostgreSQL): the API's latency and heard words
## next to what the simulated phone measured
records: $(STAMP)
	$(PY) -m harness.call_record

## the barge-in scenarios and the greeting latency, measured at the simulated phone
barge-in: $(STAMP)
	$(PY) -m harness.barge_in

## the VAD figures behind the default minimum barge-in
false-barge-in: $(STAMP)
	$(PY) -m harness.false_barge_in

## every injected fault (provider failures, overload, shutdown, silence, hostile input,
## an outbound call's lost machine-detection verdict):
## one line each, survived or not, and what the caller heard
faults: $(STAMP)
	$(PY) -m harness.faults $(ARGS)

## calls through nginx to three instances sharing PostgreSQL: spread, MAX_CALLS, a kill, a drain
load-balancer: $(STAMP) system-packages
	$(PY) -m harness.load_balancer

## caller-side benchmarks, ours and stock Pipecat side by side → BENCHMARKS.md
bench: $(STAMP)
	$(PY) -m bench $(ARGS)

## what a call costs the server in CPU: set-up, a quiet line, a conversation → CALL_COST.md
call-cost: $(STAMP)
	$(PY) -m bench.call_cost $(ARGS)

## turn detection, speech timeout vs Smart Turn v3, on recorded speech → TURNS.md
turns: $(STAMP)
	$(PY) -m bench.turns $(ARGS)

## style, formatting, and the budget of private pipecat names (PIPECAT_SEAMS.md)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.pipecat_internals
