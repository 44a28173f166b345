"""Amaranth generators for the streaming XNOR-popcount-threshold datapath (no torch here)."""
