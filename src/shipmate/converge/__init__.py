"""Converge: desired container specs vs what the engine runs -> a plan -> applied."""
