.PHONY: run test faults
# The README's two commands.
run:
	scripts/run.sh
test:
	scripts/test.sh

# Long runs, not part of `make test`.
faults:
	scripts/faults.sh --rounds 3
