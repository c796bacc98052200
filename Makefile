# Outrigger: `make demo` runs the demo, `make test` runs every test.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build test test-deps test-short lint vet fmt consul demo demo-mesh demo-static bench bench-cp bench-quick bench-tail bench-protocols bench-mtls bench-floor bench-go fuzz clean

all: build

## build: static binaries into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/outrigger ./proxy/cmd/outrigger
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/outrigger-cp ./controlplane/cmd/outrigger-cp

## consul: Consul v1.16.3 (the newest MPL-2.0 release), built once into ~/.cache/outrigger
consul:
	./scripts/install-consul.sh

## test-deps: Debian packages the tests use as real peers (redis), when missing
test-deps:
	./scripts/install-test-deps.sh

## test: vet, gofmt check, and every test with the race detector (builds Consul once)
test: lint consul test-deps
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: quick unit tests without the race detector
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: go vet and gofmt must be clean
lint: vet fmt

vet:
	$(GO) vet $(PKGS)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## demo: the shop on the mesh — Consul, outrigger-cp, Redis, NATS, six services behind outrigger
## sidecars, the edge gateway (JWT, rate limit, HTTP/3), steady load and a scripted story
## (DEMO_ONESHOT=1: run the story and exit with its verdict)
demo: build
	./scripts/install-demo-deps.sh
	./scripts/demo-shop.sh

## demo-mesh: the small mesh — Consul, outrigger-cp, three apps behind sidecars, a canary and an intention
demo-mesh: build
	./scripts/demo.sh

## demo-static: one outrigger from a static bootstrap in front of two example apps
demo-static: build
	./scripts/demo-static.sh

## bench: outrigger vs direct, nginx, HAProxy, Caddy (<= 15 min) -> bench/results/latest.md
bench: build
	./bench/install-peers.sh
	$(GO) build -o $(BIN)/outrigger-bench ./bench/cmd/outrigger-bench
	$(BIN)/outrigger-bench --outrigger $(BIN)/outrigger $(BENCH_FLAGS)

## bench-quick: one short scenario (<= 60 s) -> bench/results/quick.md
bench-quick: build
	./bench/install-peers.sh
	$(GO) build -o $(BIN)/outrigger-bench ./bench/cmd/outrigger-bench
	$(BIN)/outrigger-bench --quick --outrigger $(BIN)/outrigger $(BENCH_FLAGS)

## bench-cp: control plane scale: 1,000 and 10,000 real ADS streams over real Consul (<= 25 min) -> bench/results/cpscale.md
bench-cp: build consul
	$(GO) build -o $(BIN)/outrigger-cpbench ./bench/cmd/outrigger-cpbench
	$(BIN)/outrigger-cpbench --outrigger-cp $(BIN)/outrigger-cp --proxies 1000 --layout pods,shared --mode sotw,delta --deadline 10m $(CPBENCH_FLAGS)
	$(BIN)/outrigger-cpbench --outrigger-cp $(BIN)/outrigger-cp --proxies 10000 --layout shared --mode sotw,delta --wait-gc 2m30s --deadline 20m --append $(CPBENCH_FLAGS)

## bench-tail: one slow backend of three: p99 with no retry, per-try timeout + retries, hedging (~2 min) -> bench/results/tail.md, tail-40ms.md
bench-tail: build
	$(GO) run ./bench/cmd/outrigger-tailbench --outrigger $(BIN)/outrigger --out bench/results/tail.md $(TAIL_FLAGS)
	$(GO) run ./bench/cmd/outrigger-tailbench --outrigger $(BIN)/outrigger --out bench/results/tail-40ms.md --slow-delay 40ms $(TAIL_FLAGS)

## bench-protocols: HTTP/3 vs Caddy and tcp_proxy vs direct/HAProxy (~90 s) -> bench/results/protocols.md
bench-protocols: build
	./bench/install-peers.sh
	$(GO) build -o $(BIN)/outrigger-bench ./bench/cmd/outrigger-bench
	$(BIN)/outrigger-bench --outrigger $(BIN)/outrigger --scenarios small-h3,tcp-bulk --targets direct,outrigger,haproxy,caddy --name protocols --no-crosscheck --max-duration 5m $(BENCH_FLAGS)

## bench-mtls: two sidecars with mTLS vs the same two in plaintext, gRPC unary at 1k req/s open loop: interleaved in one pair of sidecars (30 reps, the verdict) and as separate targets (5 reps) (~9 min) -> bench/results/mtls.md
bench-mtls: build
	$(GO) build -o $(BIN)/outrigger-bench ./bench/cmd/outrigger-bench
	$(BIN)/outrigger-bench --outrigger $(BIN)/outrigger --scenarios grpc-unary --targets direct,outrigger-2hop,outrigger-2hop-mtls,outrigger-2hop-ab --rate 1000 --open-duration 10s --no-closed --reps 5 --ab-reps 30 --name mtls --max-duration 14m $(BENCH_FLAGS)

## bench-floor: small HTTP/1.1 through one hop: outrigger against go-floor and go-lean (bench/floor: the least a Go proxy does per request, and that plus a proxy's work on bytes) and nginx, 5 reps -> bench/results/floor.md
bench-floor: build
	./bench/install-peers.sh
	$(GO) build -o $(BIN)/outrigger-bench ./bench/cmd/outrigger-bench
	$(BIN)/outrigger-bench --outrigger $(BIN)/outrigger --scenarios small-h1 --targets direct,go-floor,go-lean,outrigger,nginx --reps 5 --name floor $(BENCH_FLAGS)

## bench-go: the proxy's in-process Go benchmarks (proxied vs direct, allocs)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./proxy/...

## fuzz: every go test -fuzz target in the repo, one at a time, FUZZTIME each (default 30s;
## e.g. make fuzz FUZZTIME=5m; FUZZDIR=./proxy/router for one package's targets). Not part of
## test: there, the seed corpora run as plain tests.
## FUZZMINTIME bounds the minimising of each new input (go's default, 60s, would eat the run).
## A bare "context deadline exceeded" at the end of a run, with no input written, is Go's own
## coordinator race (go.dev/issue/75804, fixed in Go 1.27): reported, not counted as a failure.
FUZZTIME ?= 30s
FUZZMINTIME ?= 3s
FUZZDIR ?= .
fuzz:
	@failed=""; flaked=""; out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' $(FUZZDIR) | sort); do \
	  dir=$$(dirname $$f); \
	  for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*\*testing\.F).*/\1/p' $$f); do \
	    echo "== $$dir $$name for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $(FUZZ_FLAGS) $$dir 2>&1 | tee $$out; \
	    if [ $${PIPESTATUS[0]} -ne 0 ]; then \
	      if grep -q '^    context deadline exceeded$$' $$out && ! grep -q 'Failing input written' $$out; then \
	        flaked="$$flaked $$dir:$$name"; \
	      else \
	        failed="$$failed $$dir:$$name"; \
	      fi; \
	    fi; \
	  done; \
	done; \
	if [ -n "$$flaked" ]; then echo "fuzz: ended by Go's deadline race, no failing input:$$flaked"; fi; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (failing inputs are in each package's testdata/fuzz)"; exit 1; fi

clean:
	rm -rf $(BIN)
