"""Models: a registry of architectures and one portable checkpoint format."""
