"""Bundled ShareGPT sample corpus, the generator that writes it, and hand-labelled chat turns in twelve languages."""
