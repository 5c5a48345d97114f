# Ferry's two commands are `make demo` and `make test`; the rest are their parts.
# The control-plane binary is built once (and cached by content under ~/.cache/ferry) by
# e2e/controlplane/build.sh; every test and the demo reuse it through FERRY_CONTROLPLANE.

CONTROLPLANE := $(CURDIR)/target/controlplane/controlplane
export FERRY_CONTROLPLANE := $(CONTROLPLANE)
CARGO ?= cargo

.PHONY: all build controlplane test unit e2e demo bench crds fmt lint clean

all: build

build:
	$(CARGO) build --bins

controlplane: $(CONTROLPLANE)

$(CONTROLPLANE): e2e/controlplane/go.mod e2e/controlplane/go.sum $(wildcard e2e/controlplane/*.go) e2e/controlplane/build.sh
	e2e/controlplane/build.sh $@

## test: every test — unit, integration against local services, e2e against real control planes.
test: controlplane
	$(CARGO) test --lib --bins --tests --no-fail-fast

## demo: the sandbox — two control planes, the controller, an example plan shown Ready.
demo: controlplane
	$(CARGO) run --quiet --bin ferry -- demo

## bench: the mover benchmark (ratios against plain rsync and rsync over stunnel). Data lives on tmpfs
## (/dev/shm) when there is one, so the figures compare transports rather than disk writeback.
bench:
	FERRY_BENCH_DIR=$${FERRY_BENCH_DIR:-$$(test -d /dev/shm && echo /dev/shm || echo /tmp)} $(CARGO) bench --bench mover

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
