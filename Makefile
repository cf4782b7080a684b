# The two commands of the README:   make book   (build the book)   make test   (run every test)
# Both create ./.venv on first use. Variables: PROFILE=smoke|cpu|paper, PYTHON=python3.11, TORCH=...

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
# torchvision needs a torch build it was compiled against; these two are the pair pip finds on
# the study's reference machine. GPU users: keep them and pip resolves the CUDA build; CPU-only
# machines elsewhere can add  PIP_EXTRA="--index-url https://download.pytorch.org/whl/cpu".
TORCH  ?= torch==2.14.1 torchvision==0.29.1
PIP_EXTRA ?=
PYTEST_ARGS ?=
# pytest-xdist workers of make test (one per core; 0: in this process)
TEST_JOBS ?= auto

.PHONY: book test venv notebooks-smoke benchmark peer clean help
.DEFAULT_GOAL := help

help:
	@echo "make book   execute every notebook (PROFILE=$(PROFILE)) and render the book into _build/html"
	@echo "make test   unit tests + pytest --nbval over the notebooks + the rendered-book check"
	@echo "make notebooks-smoke   re-execute the notebooks with the smoke profile and store their outputs"
	@echo "make benchmark         codec throughput on this machine (scripts/benchmark_codecs.py)"
	@echo "make peer              install mmpose 1.3.2 into the venv, check our decoders against its codecs and h3r.integrations.mmpose"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_EXTRA) $(TORCH)
	$(PY) -m pip install --quiet $(PIP_EXTRA) -e ".[test]"
	touch $@

book: venv
	$(PY) -m h3r.book build --profile $(PROFILE)

test: venv
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -n $(TEST_JOBS) \
		$(PYTEST_ARGS)

notebooks-smoke: venv
	$(PY) -m h3r.book execute --profile smoke --in-place

benchmark: venv
	$(PY) scripts/benchmark_codecs.py

# mmpose pins opencv-python (a GUI build) and mmcv's compiled ops; the peer check needs neither:
# mmcv-lite (below 2.2, which mmdet 3.3 accepts), the headless opencv, and mmpose itself without its
# dependency pins. mmpose.models, which the loss and head checks build, also imports six, xtcocotools
# (built here against this numpy: its wheel is built against numpy 1) and mmdet's Python code; the
# three compiled ops it imports and never calls here are stubbed by tests/peer_stubs.py. Then the
# decoders against mmpose's codecs and losses, h3r.integrations.mmpose and the codec benchmark.
peer: venv
	$(PY) -m pip install --quiet $(PIP_EXTRA) mmengine "mmcv-lite>=2.0.0rc4,<2.2.0" munkres json-tricks \
		opencv-python-headless six cython
	$(PY) -m pip install --quiet $(PIP_EXTRA) --no-build-isolation --no-binary xtcocotools xtcocotools
	$(PY) -m pip install --quiet --no-deps mmpose==1.3.2 "mmdet>=3.0,<3.4"
	$(PY) -m pytest tests/codecs/test_codecs_mmpose.py tests/codecs/test_coordinate_codecs_mmpose.py tests/integrations $(PYTEST_ARGS)
	$(PY) scripts/benchmark_codecs.py

clean:
	rm -rf _build runs/*/.render-cache
