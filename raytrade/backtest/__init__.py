"""In-process backtests on the live engine's classes."""
