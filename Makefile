# hardbound: make run (a local trial server) and make test (what CI runs).
GO        ?= go
BIN       := bin/hardbound
PKGS      := ./...
FUZZTIME  ?= 10s
BENCHTIME ?= 1s

.PHONY: all build install run test fmt-check vet bench fuzz clean screenshots

all: build

# The version is the git description of the checkout (revision, "-dirty"
# for uncommitted changes); the build date is the time of this build.
VERSION   ?= $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION) -X main.buildDate=$$(date -u +%Y-%m-%dT%H:%M:%SZ)" -o $(BIN) ./cmd/hardbound

# Puts the binary on PATH: $(PREFIX)/bin/hardbound (default /usr/local).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/hardbound

# The server on its embedded defaults, data in ./data.
run: build
	./$(BIN) serve --dev --data-dir ./data

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# Unit, integration and interop tests (eapol_test, radclient, freeradius, swtpm, hostapd, chromium
# must be installed; .ci/run installs them). Under CI=true a missing peer fails.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 40m $(PKGS)

# The console's screenshots in docs/screenshots (headless Chromium, a minute
# of generated traffic first so the overview has charts).
screenshots:
	HARDBOUND_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestE2EConsoleInChromium$$' ./cmd/hardbound

# The Go benchmarks of the hot paths. BenchmarkDecide1M builds a store of
# 1,000,000 devices once (about 10-17 min on 2 cores) and reuses it.
BENCH_STORE ?= $(CURDIR)/.bench/decide1m
bench:
	mkdir -p $(dir $(BENCH_STORE))
	HARDBOUND_BENCH_STORE=$(BENCH_STORE) $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m $(PKGS)

# A short run of every fuzz target.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  list=$$($(GO) test -list '^Fuzz' $$pkg); \
	  for f in $$(echo "$$list" | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
