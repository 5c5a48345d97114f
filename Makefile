# Ferry's two commands are `make demo` and `make test`; the rest are their parts.
# The control-plane binary is built once (and cached by content under ~/.cache/ferry) by
# e2e/controlplane/build.sh; every test and the demo reuse it through FERRY_CONTROLPLANE.

CONTROLPLANE := $(CURDIR)/target/controlplane/controlplane
export FERRY_CONTROLPLANE := $(CONTROLPLANE)
CARGO ?= cargo
# test, demo and bench build here (crates.io reachable), then run inside ISOLATED: a network namespace
# with only loopback, so nothing they start can reach another host (docs/sandbox.md, "Network isolation").
ISOLATED := $(CURDIR)/e2e/isolated.sh
# Flags of `ferry demo`, e.g. `make demo DEMO_FLAGS=--keep`.
DEMO_FLAGS ?=

.PHONY: all build controlplane test unit e2e demo bench bench-controller crds fmt lint clean

all: build

build:
	$(CARGO) build --bins

controlplane: $(CONTROLPLANE)

$(CONTROLPLANE): e2e/controlplane/go.mod e2e/controlplane/go.sum $(wildcard e2e/controlplane/*.go) e2e/controlplane/build.sh
	e2e/controlplane/build.sh $@

## test: every test — unit, integration against local services, e2e against real control planes.
test: controlplane
	$(CARGO) test --lib --bins --tests --no-fail-fast --no-run
	$(ISOLATED) $(CARGO) test --offline --lib --bins --tests --no-fail-fast

## demo: the sandbox — two control planes, the controller, an example plan shown Ready.
demo: controlplane
	$(CARGO) build --quiet --bin ferry
	$(ISOLATED) $(CARGO) run --offline --quiet --bin ferry -- demo $(DEMO_FLAGS)

## bench: the mover benchmark (ratios against plain rsync and rsync over stunnel). Data lives on tmpfs
## (/dev/shm) when there is one, so the figures compare transports rather than disk writeback.
bench:
	$(CARGO) bench --bench mover --no-run
	FERRY_BENCH_DIR=$${FERRY_BENCH_DIR:-$$(test -d /dev/shm && echo /dev/shm || echo /tmp)} \
		$(ISOLATED) $(CARGO) bench --offline --bench mover

## bench-controller: the controller's cost on the sandbox (API requests per idle plan and per running
## migration from the audit logs, RSS, CPU, reconcile latency); not part of `make test`. Sizes:
## FERRY_BENCH_IDLE_PLANS (200), FERRY_BENCH_MIGRATIONS (20), FERRY_BENCH_IDLE_SECONDS (180).
bench-controller: controlplane
	$(CARGO) bench --bench controller --no-run
	$(ISOLATED) $(CARGO) bench --offline --bench controller

## crds: regenerate manifests/crds from the API types.
crds:
	$(CARGO) run --quiet --bin ferry -- crds --out manifests/crds

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	rm -rf target .sandbox
