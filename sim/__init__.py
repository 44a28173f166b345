"""Cycle-accurate simulation of generated hardware against the golden model (no torch here)."""
