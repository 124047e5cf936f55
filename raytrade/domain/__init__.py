"""Pure trading logic: no Ray, no I/O."""
