# lseg_ros: the two commands of the README, plus helpers.
#   make demo   set everything up (idempotent) and run the node on the bundled sample stream
#   make test   set everything up (idempotent) and run the whole test suite (CPU is enough)
.PHONY: setup demo test lint clean gpu-check

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

gpu-check: setup
	bash scripts/gpu_check.sh

lint: setup
	bash scripts/test.sh test/unit/test_lint.py

clean:
	rm -rf build install log demo_output
