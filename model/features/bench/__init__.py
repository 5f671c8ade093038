"""Benchmarks and probes of the feature front end, and the synthetic media they (and the tests)
compose clips from. Each module is a CLI: `python -m model.features.bench.<name> --help`."""
