"""Ray Serve applications: the ensemble, the RL policy and the HTTP gateway."""
