# adit developer entry points; the work is in scripts/*.sh.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := build

# rustup installs into ~/.cargo/bin, which is often missing from PATH in
# non-login shells (CI, sudo).
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO       ?= cargo
CARGO_TEST  ?= $(CARGO) test --workspace
CARGO_BUILD ?= $(CARGO) build --release
PG          := scripts/pg.sh

.PHONY: setup build pg-start pg-stop test deploy-check fuzz run bench fmt lint clean-data

setup:
	@scripts/setup.sh

build:
	$(CARGO_BUILD)

pg-start:
	@$(PG) start

pg-stop:
	@$(PG) stop

test: setup pg-start
	@DATABASE_URL="$$($(PG) url)"; \
	export DATABASE_URL; \
	export ADIT_TEST_DATABASE_URL="$$DATABASE_URL"; \
	echo "make test: DATABASE_URL=$$DATABASE_URL"; \
	$(PG) drop-test-databases; \
	$(CARGO_TEST) 2>&1 | tee .data/test.log; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' .data/test.log
	@scripts/deploy-check.sh
	@scripts/fuzz.sh $${FUZZ_SECONDS:-60}

fuzz:
	@scripts/fuzz.sh

# promtool on the alert rules, systemd-analyze on the units (part of test).
deploy-check: setup
	@scripts/deploy-check.sh

# run.sh starts the private cluster itself when DATABASE_URL is unset.
run: setup build
	@scripts/run.sh

bench: setup
	@scripts/bench.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-data:
	@$(PG) stop
	rm -rf .data
