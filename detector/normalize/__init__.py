"""normalize layer."""
