.PHONY: run test faults bench fuzz
# The README's two commands.
run:
	scripts/run.sh
test:
	scripts/test.sh

# Long runs, not part of `make test`.
faults:
	scripts/faults.sh --rounds 3
# The scale benchmark (benchmarks/scale): 1,000,000 sessions in their own database; never in
# scripts/test.sh. `make bench ARGS="--sessions 100000"` for a quicker run.
bench:
	scripts/bootstrap.sh >/dev/null && .venv/bin/python -m benchmarks.scale $(ARGS)
fuzz:
	scripts/fuzz.sh
