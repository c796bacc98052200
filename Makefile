# Outrigger: `make demo` runs the demo, `make test` runs every test.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build test test-short lint vet fmt demo bench bench-quick clean

all: build

## build: static binaries into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/outrigger ./proxy/cmd/outrigger

## test: vet, gofmt check, and every test with the race detector
test: lint
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

## demo: a static proxy in front of two example apps, traffic through it
demo: build
	./scripts/demo.sh

## bench: the proxy's Go benchmarks (the peer harness comes with issue 3)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./proxy/...

bench-quick:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./proxy/...

clean:
	rm -rf $(BIN)
