"""Tools built on the library: the `c2f` command (cli), the benchmarks, the conformance
vectors, the progressive figures, the published curves, and safe file writing."""
