"""Developer tools (benchmarks, context evaluation); imported only when their command runs."""
