# kplex build, run, test and benchmark entry points.
SHELL := /bin/bash

KUBE_VERSION   ?= v1.37.2
KPLEX_VERSION  ?= 0.1.0
GIT_COMMIT     := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the clock's (the SOURCE_DATE_EPOCH convention): an
# unchanged tree links nothing again, and the binaries are reproducible.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BUILD_DATE     := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
VERSION        := $(KUBE_VERSION)+kplex.$(KPLEX_VERSION)
BIN            ?= $(CURDIR)/bin
# Built from the module, Kubernetes would report v0.0.0-master: stamp the
# version kplex serves into both places clients read it from.
VERSION_VARS   := gitVersion=$(VERSION) gitMajor=1 gitMinor=37 gitCommit=$(GIT_COMMIT) gitTreeState=clean buildDate=$(BUILD_DATE)
LDFLAGS        := $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,$(foreach v,$(VERSION_VARS),-X $(pkg).$(v)))
GO_TEST_FLAGS  ?= -count=1 -timeout 40m

export KPLEX_BIN_DIR := $(BIN)
# go-nvml's headers mark functions it wraps deprecated: 29 warnings on every
# first build that say nothing about kplex. Go's default flags, plus that.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: build up down test test-unit test-e2e bench bench-scheduler bench-nodeagent bench-network bench-sandbox conformance clean

build: ## build every binary into ./bin
	@echo "go build -o $(BIN)/ ./cmd/...  ($(VERSION))"
	@go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

up: build ## build and bring kplex up on embedded etcd
	$(BIN)/kplex up

down: ## stop kplex
	$(BIN)/kplex down

test: build ## every test: unit, integration (embedded etcd) and e2e (real binaries, real kubectl)
	go test -ldflags '$(LDFLAGS)' $(GO_TEST_FLAGS) ./...

test-unit: ## unit tests only
	go test -short -count=1 ./...

test-e2e: build ## e2e tests only
	go test -ldflags '$(LDFLAGS)' $(GO_TEST_FLAGS) ./test/e2e/...

BENCH_TENANTS ?= 1000
BENCH_FLAGS   ?=
BENCH_SCHEDULER_FLAGS ?=
BENCH_NODEAGENT_FLAGS ?=
BENCH_NETWORK_FLAGS ?=
BENCH_SANDBOX_FLAGS ?=
bench: build ## tenant cost and provisioning vs a dedicated kube-apiserver + etcd, as a table (BENCH_TENANTS=10000 for more)
	@echo "go build -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver  (baseline)"
	@go build -ldflags '$(LDFLAGS)' -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	go build -o $(BIN)/kplex-bench ./test/bench
	$(BIN)/kplex-bench --bin-dir=$(BIN) --tenants=$(BENCH_TENANTS) $(BENCH_FLAGS)

bench-scheduler: build ## kplex-scheduler vs vanilla kube-scheduler: 1,000 tenants × 10 pods onto 5,000 nodes, as a table
	@echo "go build -o $(BIN)/kube-apiserver $(BIN)/kube-scheduler (vanilla, same module)"
	@go build -ldflags '$(LDFLAGS)' -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	@go build -ldflags '$(LDFLAGS)' -o $(BIN)/kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
	go build -o $(BIN)/kplex-bench ./test/bench
	$(BIN)/kplex-bench --bin-dir=$(BIN) --scheduler $(BENCH_SCHEDULER_FLAGS)

bench-nodeagent: build ## kplex-nodeagent: pod bound → Running (simulated runtime, and containerd when available), 5,000 simulated nodes' registration, heartbeats and RSS, as a table
	go build -o $(BIN)/kplex-bench ./test/bench
	$(BIN)/kplex-bench --bin-dir=$(BIN) --nodeagent $(BENCH_NODEAGENT_FLAGS)

bench-network: build ## the pod network on one containerd node in network namespaces (root): pod start with vs without it, Service programming at 1,000 tenants × 3 Services vs one tenant, the agent's RSS, cluster DNS, as a table
	go build -o $(BIN)/kplex-bench ./test/bench
	$(BIN)/kplex-bench --bin-dir=$(BIN) --network $(BENCH_NETWORK_FLAGS)

bench-sandbox: ## gVisor (runsc) vs runc in one private containerd (root): pod start, a CPU loop, writes to the root fs, stop + remove, as a table
	@mkdir -p $(BIN)
	go build -o $(BIN)/kplex-bench ./test/bench
	$(BIN)/kplex-bench --sandbox $(BENCH_SANDBOX_FLAGS)

# FOCUS, SKIP, TIMEOUT, PROCS, NODES, REPORT_DIR and KEEP tune the run:
# make conformance FOCUS='\[sig-api-machinery\].*\[Conformance\]'
conformance: build ## upstream's conformance suite (e2e.test) against a kplex tenant on containerd nodes (root); a table by SIG in _output/conformance/
	BIN=$(BIN) conformance/run.sh

clean:
	rm -rf $(BIN)
