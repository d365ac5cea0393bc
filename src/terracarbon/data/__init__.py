"""Readers and writers of the real dataset formats, and synthetic scene generators."""
