"""ShareGPT data pipeline: clean pages, filter by model, convert to tokenized samples."""
