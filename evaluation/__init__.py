"""LLM-judge evaluation: answers, pairwise judging with evidence and position calibration, scores.

Stages, each `python -m evaluation.STAGE --help`:

1. `get_model_answer`  answers with every checkpoint (through the ochat server) -> OUT/{bench}_{model}.jsonl
2. `get_openai_answer` baseline answers from any OpenAI-compatible endpoint     -> OUT/{bench}_{model}.jsonl
3. `openai_eval`       pairwise reviews against the baseline, both orders        -> OUT/reviews/*_vs_*.jsonl
4. `summarize`         % of baseline, win/tie/loss, conflicts                    -> OUT/summary.json

`mt_bench` and `alpaca_eval` judge those benchmarks in their own formats; `summarize`
reads their results too. Every file format is described in the docstring of the module
that writes it; all endpoint traffic goes through `evaluation.api_client`.
"""
