"""Thin Ray actors around the domain logic."""
