"""Loop 1: a critic reads whole trajectories and evolves the memory structure, gated on fixed seeds."""
