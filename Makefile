# pbx2teams — run `make run` to start the service, `make test` to test it.
GO       ?= go
BIN      := bin/pbx2teams
GOFLAGS  ?=
FUZZTIME ?= 10s

.PHONY: all build run test test-go vet fuzz deps bench-portal bench-sync bench-registrations bench-calls bench-media e2e clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/pbx2teams

# Runs the service with the embedded defaults: SQLite in ./data and the
# built-in sandbox Microsoft 365 tenant. The portal is on http://127.0.0.1:8080/.
run: build
	./$(BIN) serve --sandbox

deps:
	./scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# Installs the Debian packages the tests need, starts PostgreSQL, and runs
# every test (store suite on SQLite and PostgreSQL, API, browser, SIP and
# media tests against real peers), then each fuzz target briefly.
test: deps
	@export PBX2TEAMS_TEST_POSTGRES="$$(./scripts/test-postgres.sh | tail -n 1)" && \
	  $(MAKE) --no-print-directory vet && \
	  $(GO) test -count=1 -timeout 30m ./... && \
	  $(MAKE) --no-print-directory fuzz && \
	  ./e2e/run.sh

# Each fuzz target runs for FUZZTIME on its committed corpus.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench-portal:
	./bench/portal/run.sh

bench-sync:
	./bench/sync/run.sh

bench-registrations: deps
	./bench/registrations/run.sh

bench-calls: deps
	./bench/calls/run.sh

bench-media: deps
	./bench/media/run.sh

# The whole story a new customer lives through, end to end (see e2e/run.sh).
e2e: deps
	./e2e/run.sh

clean:
	rm -rf bin
