# provision: build, test, benchmarks, demo.
GO        ?= go
BIN       ?= bin/provision
TEST_FLAGS ?= -race -count=1 -timeout 45m

.PHONY: build test test-short bench demo torture fuzz vet fmt clean

TORTURE_KILLS  ?= 50
TORTURE_STORES ?= 200
FUZZTIME       ?= 30s

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/provision

# The test command README.md and .ci/run use.
test:
	$(GO) test $(TEST_FLAGS) ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Speed and memory figures (100,000-task plans, full checkpointing).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./cmd/provision/ > bench.out
	$(GO) test -run '^$$' -bench . -benchmem ./state/ ./plan/ >> bench.out
	$(GO) test -run '^$$' -bench . -benchtime 3x ./runner/ >> bench.out
	@echo; echo "== figures (goals: apply >= 10,000 tasks/s durable; resume and dry run of 100k done < 2 s; peak RSS < 300 MB) =="
	@grep -E '^Benchmark' bench.out | grep -v 'Limits_'
	@echo; echo "== vendor limits (goals in each figure's unit: rate-limited cloud 0 failed, goodput >= 90% of the limit, 429s <= 5%;"
	@echo "   requests per store = 4+k; 1,000 stores at 20 ms wall/ideal <= 1.2; validate 500k items < 3 s and 600 MB; reject a 50 MB CSV < 300 MB) =="
	@grep -E '^BenchmarkLimits_' bench.out

# Main job on the built-in sandbox: a rollout with faults, a failure, a resume, status.
demo: build
	./examples/demo.sh $(BIN)

# The rollout plan against the sandbox with every fault on, SIGKILLed TORTURE_KILLS
# times at random moments, rerun until done; then the fakes' own state is checked.
torture:
	PROVISION_TORTURE_KILLS=$(TORTURE_KILLS) PROVISION_TORTURE_STORES=$(TORTURE_STORES) \
	  $(GO) test -count=1 -timeout 60m -run 'TestTorture|TestApply_SIGKILL' -v ./cmd/provision/ | grep -E 'torture:|kills|^(---|ok|FAIL|PASS)'

# Every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin bench.out examples/plans/.provision
