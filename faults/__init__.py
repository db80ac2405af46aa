"""The fault table (`python -m faults`, `make faults`): see faults/__main__.py."""
