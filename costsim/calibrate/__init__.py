"""costsim calibrate: microbenchmarks on the user's hardware, fitted hardware profiles, shipped reference data.

Modules: `results` (the versioned results-file format), `env` (environment record), `timing` (how a kernel is
timed), `bench_*` (one family of microbenchmarks each), `run` (the pass with a progress callback), `fit_gemm`
and `fit` (profile parameters from results), `profile_yaml` (writing a profile with provenance), `compare`
(the cost kernel's prediction vs every measurement), `cli` (the `costsim calibrate` sub-app).

PyTorch is an optional extra (`pip install torch`, or `pip install -e '.[calibrate]'` in a checkout): only `run` and the `bench_*` modules use
it, and they import it inside functions, so importing costsim never imports torch.
"""
