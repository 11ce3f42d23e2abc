# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
NPM_STAMP := node_modules/.package-lock.json
# The node flags the sidecar runs with (src/cli/node-flags.ts says why; a test keeps this line in step).
SIDECAR_NODE_FLAGS := --max-semi-space-size=4

.PHONY: run test build lint bench soak clean install demo demo-zones fuzz help

# npm ci only when package-lock.json is newer than what is installed.
$(NPM_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $(NPM_STAMP)

install: $(NPM_STAMP)

# A file removed from src/ or test/ must not live on in dist/ (mocha would still run its test); dist/
# is pruned, not removed, so that a sidecar `make run` started keeps running while `make demo` builds.
build: install
	@npx tsc -p . && npx tsc -p tsconfig.client.json
	@find dist -name '*.js' | while read -r js; do ts="$${js#dist/}"; [ -f "$${ts%.js}.ts" ] || rm -f "$$js" "$$js.map" "$${js%.js}.d.ts"; done

run: build
	node $(SIDECAR_NODE_FLAGS) dist/src/cli/main.js --rules deploy/examples/access-audit-default.yaml

# Biome (format and lint, 120 columns: biome.json) and the architecture test (imports flow one way).
lint: build
	npx biome ci --colors=off --error-on-warnings
	npx mocha dist/test/architecture.test.js

# Every test, in a temp directory of the run's own: the run fails when a test leaves anything in it.
test: lint
	@run_tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/meshaudit-test-run.XXXXXX"); \
	TMPDIR=$$run_tmp npx mocha "dist/test/**/*.test.js" --ignore dist/test/architecture.test.js; rc=$$?; \
	if [ -n "$$(ls -A "$$run_tmp")" ]; then \
	  echo "make test: the tests left these in their temp directory $$run_tmp:"; ls -A "$$run_tmp" | head -20; rc=1; \
	else rmdir "$$run_tmp"; fi; \
	exit $$rc

# The property test of the plain byte path against the reference decoder (test/pipeline/evaluate-batch.test.ts),
# run long: FUZZ_SECONDS (300 by default) from FUZZ_SEED (the current time by default). `make test` runs
# it for 3 s from a fixed seed. A failure prints the seed to replay and the event that disagrees, in hex.
FUZZ_SECONDS ?= 300
fuzz: build
	@seed=$${FUZZ_SEED:-$$(date +%s)}; echo "make fuzz: seed $$seed, $(FUZZ_SECONDS) s"; \
	FUZZ_SEED=$$seed FUZZ_SECONDS=$(FUZZ_SECONDS) npx mocha dist/test/pipeline/evaluate-batch.test.js

# The benchmark (issue 4): the real sidecar under a separate load generator, beside the floor and the
# naive baselines; prints a table and writes bench/results/latest.{json,md}. ~9.5 minutes;
# BENCH_QUICK=1 for a run of ~30 s, BENCH_ONLY=s1,naive-stream for some scenarios, BENCH_ROUNDS=1 for one
# round of the compared scenarios (3 by default), BENCH_PROFILE=1 to profile, BENCH_SIDECAR=<another build's
# dist/src/cli/main.js> to run that sidecar on the same inputs (A/B).
bench: build
	node dist/bench/run.js

# The soak (issue 12; not in `make test`): the real sidecar for SOAK_SECONDS (default 600) under streams,
# Record calls and AccessAudit changes at once, rotation and retention on, SIGKILLed and restarted a few
# times; checks exactly once, retention and flat memory, prints the figures, exits 1 on a failure.
# docs/soak.md.
soak: build
	node dist/bench/soak.js

# Exit code 1 (an event refused) is part of the demo; 2 and up (usage, no sidecar, a refused caller) end it.
demo: build
	@bin/meshaudit record deploy/examples/events.jsonl; rc=$$?; \
	if [ $$rc -ge 2 ]; then exit $$rc; fi; \
	echo "--- last records in ./var/audit/audit.log:"; tail -n 5 var/audit/audit.log

# Two zones side by side (demo/zones.ts): their own sidecars, rules and files under ./var/demo-zones/ (made
# again at each run; the rest of ./var is left alone), a control plane stream to each, a rule change in
# zone-2; exits 1 when a zone's records or rules are not its own alone.
demo-zones: build
	@node dist/demo/zones.js

clean:
	rm -rf dist var

# The targets, each with its line.
help:
	@echo "make run         installs, builds, starts the sidecar on the built-in default config (./var/)"
	@echo "make test        installs, builds, lints, runs every test"
	@echo "make demo        records deploy/examples/events.jsonl to the running sidecar, shows the audit file"
	@echo "make demo-zones  two sidecars for zone-1 and zone-2 (./var/demo-zones/), shows each keeps its own"
	@echo "make build       installs what is missing, compiles to dist/ (then: bin/meshaudit --help)"
	@echo "make lint        Biome and the architecture test"
	@echo "make bench       the benchmark table (docs/performance.md; BENCH_QUICK=1 for ~30 s)"
	@echo "make soak        the long run under load with kills (docs/soak.md; SOAK_SECONDS)"
	@echo "make fuzz        the byte path against the reference decoder (FUZZ_SECONDS, FUZZ_SEED)"
	@echo "make clean       removes dist/ and var/ (every record and rule of make run)"
