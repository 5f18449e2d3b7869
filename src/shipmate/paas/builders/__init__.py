"""Builders: detect how to build an app from its source tree and produce a Dockerfile."""
