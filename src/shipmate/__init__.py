"""Shipmate: a self-hosted platform for people who run their own servers."""

__version__ = "0.1.0"
