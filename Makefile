# Two commands do all set-up on a fresh machine (Python >= 3.11 on PATH as python3):
#   make claims   smoke claims + verdict table + report folder (reports/out/<UTC time>/, reports/out/latest)
#   make test     the default test suite (unit, property and smoke-claim tests), the integration
#                 tests (subprocesses, Ray, concurrent workers), then the gpu tier's dry run
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray
REPORT_DIR := reports/out/$(shell date -u +%Y%m%dT%H%M%SZ)

.PHONY: test claims bench install compare screenshot stability

# Everything, Ray included (the nightly workflow's --executor ray needs it).
install: $(RAY_STAMP)

# Two stamps: $(STAMP) is the harness and its dev tools (all that `make claims`, `make bench` and
# the other targets need); $(RAY_STAMP) adds Ray, an optional extra (~250 MB with its dependencies),
# for the Ray executor and its tests (`make test`, `make install`). Both re-install when the
# dependency files change. constraints.txt pins the tested versions (torch's CPU build among them).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray]'
	touch $@

# The default suite (pyproject.toml's addopts: not gpu, not slow, not integration) and the
# integration tests (subprocess CLIs and pytest sessions, Ray clusters, concurrent workers; those
# that are also slow or gpu stay out) in one session, then the gpu tier's dry run on the CPU (every
# gpu setting shrunk, same code paths, nothing judged; the cifar10 settings on a fake CIFAR-10
# folder). Both on TEST_WORKERS pytest-xdist workers, each with an equal share of the cores'
# torch threads (fixtures/options.py): on 2 cores two 1-thread workers do ~1.7x the work of one
# 2-thread process. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
DRY_RUN_DATA := build/fake-cifar
test: $(RAY_STAMP)
	$(BIN)/python -m pytest -m "not gpu and not slow" -n $(TEST_WORKERS)
	$(BIN)/python tests/fake_cifar.py $(DRY_RUN_DATA) --per-batch 500
	$(BIN)/python -m pytest claims/ -m gpu --dry-run --device cpu --data-root=$(DRY_RUN_DATA) -p no:cacheprovider -n $(TEST_WORKERS)

claims: $(STAMP)
	@mkdir -p $(REPORT_DIR)
	$(BIN)/python -m pytest claims/ -m smoke --report-dir $(REPORT_DIR); status=$$?; \
		ln -sfn $(notdir $(REPORT_DIR)) reports/out/latest; exit $$status

# Do the verdicts repeat? The smoke claims on four disjoint seed sets (0, 1000, 2000, 3000: more
# than any setting's max_seeds apart); prints each verdict per seed set, exits 1 if any differs.
stability: $(STAMP)
	$(BIN)/python -m reports.stability --offsets 0 1000 2000 3000

# Compare two results.json (or report folders): exits 1 on a regression.
#   make compare OLD=reports/out/20261121T030000Z NEW=reports/out/latest
compare: $(STAMP)
	$(BIN)/python -m reports.compare $(OLD) $(NEW)

# Screenshot of the latest report for the README (installs Debian's chromium if missing), reduced
# to a 64-colour PNG so that it stays small in the repository.
screenshot: $(STAMP)
	.ci/install-chromium
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir="$$(mktemp -d)" --window-size=1200,1400 \
		--hide-scrollbars --screenshot=docs/report.png "file://$(CURDIR)/reports/out/latest/index.html" 2>/dev/null
	$(BIN)/python -c "from PIL import Image; Image.open('docs/report.png').convert('RGB').quantize(64).save('docs/report.png', optimize=True)"

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks/ --benchmark-only --benchmark-columns=min,median,max,rounds
