"""SimPy discrete-event simulation: one training step (schedules, streams) and a whole run (failures, checkpoints)."""
