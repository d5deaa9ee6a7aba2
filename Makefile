# Two commands matter: `make run` and `make test`. Both install what is
# missing first (tools/bootstrap.sh), so a fresh Debian machine needs nothing else.
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: bootstrap run test lint bench

bootstrap:
	@tools/bootstrap.sh

run: bootstrap
	$(PY) -m tui.demo

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy ptt_protocol crypto ptt_server ptt_client ptt_admin tui bench tests
	.venv/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: bootstrap
	$(PY) -m bench.protocol --json
	$(PY) -m bench.crypto --json
	$(PY) -m bench.relay --listeners 50 --seconds 10 --json
	$(PY) -m bench.waves --json
	$(PY) -m bench.voice --json
	$(PY) -m bench.calls --json
	$(PY) -m bench.cluster --json
	$(PY) -m pytest -q -m bench
