"""Bundled ShareGPT sample corpus and the generator that writes it."""
