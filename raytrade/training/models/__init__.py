"""Signal models: each predicts the probability that the forward return is positive."""
