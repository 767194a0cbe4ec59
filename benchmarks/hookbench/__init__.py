"""The hook-overhead benchmarks' parts: configurations and targets, query streams, callgrind parsing,
evaluation, formatting, the private build and the runs of a single-user backend under callgrind."""
