"""Engines that run in another process: inference workers fed by Redis Streams."""
