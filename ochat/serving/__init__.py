"""OpenAI-compatible serving: `protocol` (wire format and errors), `engine` (continuous batching on the model),
`detokenize` (streamed text), `openai_api_server` (the aiohttp app and its command line)."""
