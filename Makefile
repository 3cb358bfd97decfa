# rnnlm: two commands on a fresh machine -- `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
AESARA_VENV ?= .venv-aesara
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q --disable-pip-version-check
# BLAS for the C linker: mkl (default: the mkl wheel, linked by rnnlm.engine; x86-64 only) or none
BLAS ?= mkl
comma := ,
BLAS_EXTRA := $(if $(filter mkl,$(BLAS)),$(if $(filter x86_64,$(shell uname -m)),$(comma)mkl))
# oneDNN's LSTM kernel for LSTM layers (rnnlm.engine_ops.dnnl; x86-64 Linux): yes (default) or no
DNNL ?= yes
DNNL_EXTRA := $(if $(filter yes,$(DNNL)),$(if $(filter x86_64,$(shell uname -m)),$(comma)onednn))
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-core test-aesara notebooks lab bench serve clean help

help:
	@echo "make demo         set up .venv, train on the default corpus until it stops learning (<= 2 min),"
	@echo "                  judge it against n-gram baselines, print sentences (works offline)"
	@echo "make test         set up .venv and run the full test suite (PyTensor)"
	@echo "                  (BLAS=mkl, the default, installs MKL for the C linker; BLAS=none does not;"
	@echo "                  DNNL=yes, the default, installs oneDNN for LSTM layers; DNNL=no does not)"
	@echo "make test-aesara  set up .venv-aesara and run the core suite on Aesara 2.9.4"
	@echo "make notebooks    re-execute notebooks/ in place"
	@echo "make lab          start JupyterLab in the project's environment"
	@echo "make bench        run the benchmarks (rnnlm bench all)"
	@echo "make serve CKPT=runs/gru   the web page for a checkpoint (rnnlm serve)"

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[pytensor,test$(BLAS_EXTRA)$(DNNL_EXTRA)]'
	touch $@

$(AESARA_VENV)/.installed: setup.cfg pyproject.toml
	test -x $(AESARA_VENV)/bin/python || $(PYTHON) -m venv $(AESARA_VENV)
	$(AESARA_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(AESARA_VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[aesara,test$(BLAS_EXTRA)$(DNNL_EXTRA)]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rnnlm demo

test: $(VENV)/.installed
	$(PY) -m pytest

test-core: $(VENV)/.installed
	$(PY) -m pytest -m core

test-aesara: $(AESARA_VENV)/.installed
	RNNLM_ENGINE=aesara $(AESARA_VENV)/bin/python -m pytest -m core

notebooks: $(VENV)/.installed
	$(PY) -m rnnlm.notebooks --in-place

lab: $(VENV)/.installed
	$(PY) -m pip install $(PIP_FLAGS) -e '.[notebooks]'
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.installed
	$(VENV)/bin/rnnlm bench all

serve: $(VENV)/.installed
	@test -n "$(CKPT)" || { echo "usage: make serve CKPT=path/to/checkpoint-or-run-folder"; exit 2; }
	$(PY) -m pip install $(PIP_FLAGS) -e '.[serve]'
	$(VENV)/bin/rnnlm serve $(CKPT)

clean:
	rm -rf $(VENV) $(AESARA_VENV) build src/*.egg-info .pytest_cache
