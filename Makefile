# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DATA_DIR ?= $(firstword $(TEXTKD_DATA_DIR) $(wildcard ../shared/data))

.PHONY: demo test lint venv dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

dev: $(VENV)/.dev

# The main job: data -> teacher -> students x methods -> test -> bench -> ONNX export -> report, offline,
# on the embedded BBC News set. Re-running skips finished stages.
demo: $(VENV)/.installed
	$(VENV)/bin/textkd run recipes/demo.yaml

test: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	TEXTKD_DATA_DIR=$(DATA_DIR) $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
