"""OpenAI-compatible serving, in layers (each imports only those below it):

- `openai_api_server`: the command line; starts Ray, the replicas and the HTTP app.
- `http_app`, `http_middlewares`: aiohttp routes, SSE streaming, request log, errors, API keys.
- `chat_service`: a parsed request to engine calls and back to text; knows no HTTP.
- `replica_pool`, `metrics`: Ray actors and least-loaded routing; Prometheus figures.
- `protocol`, `responses`: OpenAI's request models and errors; response and chunk shapes.
- `replica_worker`: one replica, the engine on its own thread inside a Ray actor.
- `engine` (`kv_cache`, `sampling`, `structured`), `detokenize`: continuous batching
  on the model under a KV budget, grammar-constrained decoding, streamed text and stop strings.
- `engine_types`: what crosses between the two sides (sampling params, token events, finish reasons,
  engine errors, replica limits, the admission check); pure Python, so the HTTP layers import without torch.
"""
