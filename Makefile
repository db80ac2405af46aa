.PHONY: run test
# The README's two commands.
run:
	scripts/run.sh
test:
	scripts/test.sh
