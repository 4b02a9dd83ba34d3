# The two commands a newcomer needs: `make run` and `make test` (both set everything up first).
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= var
PORT ?= 8443
export HOSTBACKUP_ADMIN_PASSWORD ?= admin-Demo-1

.PHONY: run test setup system-deps lint bench clean

$(BIN)/.installed: pyproject.toml setup.py src/hostbackup/backup/_smallfiles.c src/hostbackup/restore/_tarheader.c
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-deps:
	./scripts/system-deps.sh

setup: system-deps $(BIN)/.installed

run: setup
	$(BIN)/hostbackup --home $(HOME_DIR) serve --demo --host 127.0.0.1 --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache .mypy_cache .ruff_cache
