# dsvm-agent — targets a person expects. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE ?= node


.PHONY: deps test-all help build test check lint format typecheck schema lab-up lab-down lab-shell lab-test lab-cycle demo e2e e2e-matrix clean-room bench reliability deb clean

# The Debian suite of the VM-image tier: bullseye (11), bookworm (12) or trixie (13).
SUITE ?= bookworm

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

deps: ## install the Debian and npm packages the lab, tests and build need (root)
	scripts/install-deps

build: node_modules/.package-lock.json ## bundle the agent into dist/ (bin/dsvm-agent runs it)
	$(NODE) scripts/build.mjs

schema: node_modules/.package-lock.json ## regenerate packaging/config.schema.json from the config schema
	npx tsx scripts/write-schema.ts

test: build ## unit tests (tap); no root, no network beyond loopback
	scripts/offline npx tap

test-all: deps ## everything CI runs: check, unit tests, the demo, the lab tier twice, VM-image tier (bookworm), the clean room
	$(MAKE) check
	$(MAKE) test
	$(MAKE) demo
	test/lab/lab down
	$(MAKE) lab-cycle
	$(MAKE) e2e SUITE=bookworm
	$(MAKE) clean-room

typecheck: node_modules/.package-lock.json ## TypeScript type check only
	npx tsc -p tsconfig.json

lint: node_modules/.package-lock.json ## eslint only
	npx eslint .

format: node_modules/.package-lock.json ## rewrite files with prettier
	npx prettier --write .

check: typecheck lint ## lint, format check and typecheck
	npx prettier --check .
	npx tsx scripts/write-schema.ts --check

lab-up: deps build ## start the lab: Samba AD DC, storage share, client VM, Azure fakes (root)
	test/lab/lab up

lab-down: ## remove everything the lab made
	test/lab/lab down

lab-shell: ## root shell inside the lab's client VM
	test/lab/lab shell

lab-test: deps build ## integration tier against the lab (root); brings the lab up and down itself
	test/lab/run-tests

lab-cycle: deps build ## the lab budgets: up (< 30 s), lab-test, down (nothing left), twice in a row
	test/lab/cycle

demo: deps build ## the main job: lab up, provision the client VM, log alice in, show the result
	test/lab/demo

e2e: build ## VM-image tier (SUITE=bullseye|bookworm|trixie): debootstrap image, the .deb, qemu + cloud-init + systemd + CIFS
	SUITE=$(SUITE) test/e2e/run

e2e-matrix: build ## the VM-image tier on every suite in turn: bullseye, bookworm, trixie
	for s in bullseye bookworm trixie; do SUITE=$$s test/e2e/run || exit 1; done

clean-room: ## the README's set-up in a fresh Debian 12 root: install-deps, make demo, make lab-test (root)
	scripts/clean-room

reliability: deps build ## fault and scale scenarios against the lab, then docs/RELIABILITY.md (RELIABILITY_SHORT=1: the CI version) (root)
	test/reliability/run

bench: build ## benchmarks, each as a ratio against a baseline run side by side
	bench/run

deb: build ## build dsvm-agent_<version>_amd64.deb into build/
	packaging/deb/build

clean: ## remove build outputs
	rm -rf dist build .tap
