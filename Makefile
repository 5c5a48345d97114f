# Ferry's two commands are `make demo` and `make test`; the rest are their parts.
# The control-plane binary is built once (and cached by content under ~/.cache/ferry) by
# e2e/controlplane/build.sh; every test and the demo reuse it through FERRY_CONTROLPLANE.

CONTROLPLANE := $(CURDIR)/target/controlplane/controlplane
export FERRY_CONTROLPLANE := $(CONTROLPLANE)
# containerd, its runc shim and ctr for the sandbox's real nodes (e2e/node/build-containerd.sh, cached by
# content under ~/.cache/ferry/containerd; docs/sandbox.md, "Real nodes").
NODE_BIN := $(CURDIR)/target/node
export FERRY_NODE_BIN := $(NODE_BIN)
# Argo CD itself (application controller, repo-server) for the sandbox's Commit mode and its hook and
# health tests, and its CRDs in crds/ beside it (e2e/argocd/build.sh, cached by content under
# ~/.cache/ferry/argocd; docs/sandbox.md, "Argo CD"). `make test` and `make demo` build it (about 2 to 8
# minutes cold on 2 cores, seconds when cached); the tests that need it fail without it.
ARGOCD := $(CURDIR)/target/argocd/argocd
export FERRY_ARGOCD := $(ARGOCD)
CARGO ?= cargo
# test, demo and bench build here (crates.io reachable), then run inside ISOLATED: a network namespace
# with only loopback, so nothing they start can reach another host (docs/sandbox.md, "Network isolation").
ISOLATED := $(CURDIR)/e2e/isolated.sh
# Flags of `ferry-sandbox demo`, e.g. `make demo DEMO_FLAGS=--keep`.
DEMO_FLAGS ?=

## deps: install (as root) or name the Debian packages in .ci/packages that this machine lacks.
.PHONY: all build deps controlplane node argocd test unit e2e demo bench bench-controller bench-downtime crds fmt lint clean

all: build

# The product binary alone (no test hooks: the `test-hooks` feature comes only with the harness crate).
build:
	$(CARGO) build -p ferry --bins

deps:
	.ci/deps

controlplane: $(CONTROLPLANE)

$(CONTROLPLANE): e2e/controlplane/go.mod e2e/controlplane/go.sum $(wildcard e2e/controlplane/*.go) e2e/controlplane/build.sh
	e2e/controlplane/build.sh $@

node: $(NODE_BIN)/containerd

$(NODE_BIN)/containerd: e2e/node/build-containerd.sh
	e2e/node/build-containerd.sh $(NODE_BIN)

argocd: $(ARGOCD)

$(ARGOCD): e2e/argocd/go.mod e2e/argocd/go.sum $(wildcard e2e/argocd/*.go) e2e/argocd/build.sh
	e2e/argocd/build.sh $@

## test: every test — unit, integration against local services, e2e against real control planes.
test: deps controlplane node argocd
	$(CARGO) test --workspace --lib --bins --tests --no-fail-fast --no-run
	$(ISOLATED) $(CARGO) test --offline --workspace --lib --bins --tests --no-fail-fast

## demo: the sandbox — two control planes, the controller, an example plan shown Ready.
demo: deps controlplane node argocd
	$(CARGO) build --quiet --workspace --bins
	$(ISOLATED) $(CARGO) run --offline --quiet -p ferry-sandbox --bin ferry-sandbox -- demo $(DEMO_FLAGS)

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

## bench-downtime: the cutover's downtime on 1,000,000 small files, delta passes against plain rsync
## passes, release builds, rounds alternating (DOWNTIME_ROUNDS, 1; DOWNTIME_FLAGS, `--quiesce Patch`, go
## to every demo run). About 12 minutes a round; not part of `make test`.
DOWNTIME_ROUNDS ?= 1
DOWNTIME_FLAGS ?= --quiesce Patch
bench-downtime: deps controlplane node argocd
	$(CARGO) build --quiet --release --bin ferry
	$(CARGO) build --quiet -p ferry-sandbox --bin ferry-sandbox
	e2e/bench/downtime.sh $(DOWNTIME_ROUNDS) $(DOWNTIME_FLAGS)

## crds: regenerate manifests/crds from the API types.
crds:
	$(CARGO) run --quiet --bin ferry -- crds --out manifests/crds

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	rm -rf target .sandbox
