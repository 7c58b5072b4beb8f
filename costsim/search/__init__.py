"""`costsim search`: enumerate legal plans of a scenario's phase and rank them by cost, time or Pareto front."""
