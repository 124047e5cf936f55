"""Datasets, models and the model registry."""
