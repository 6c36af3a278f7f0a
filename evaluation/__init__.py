"""LLM-judge evaluation: answers, pairwise judging with evidence and position calibration, scores.

Stages, each `python -m evaluation.STAGE --help`:

1. `get_model_answer`  answers with every checkpoint (through the ochat server) -> OUT/{bench}_{model}.jsonl
2. `get_openai_answer` baseline answers from any OpenAI-compatible endpoint     -> OUT/{bench}_{model}.jsonl
3. `openai_eval`       pairwise reviews against the baseline, both orders        -> OUT/reviews/*_vs_*.jsonl
4. `summarize`         % of baseline, win rate, bootstrap CIs, counts           -> OUT/summary*.json

`mt_bench` and `alpaca_eval` judge those benchmarks in their own formats; `summarize`
reads their results too. Every judging mode runs on one core (`evaluation.judge`: the
request type, the runner, the call log behind `--continue`, `--structured`) and reads
verdicts through one parser module (`evaluation.verdicts`). Input formats are detected and
checked in `evaluation.benchmark_data`; every file format is described in the docstring of
the module that reads or writes it; all endpoint traffic goes through `ochat.utils.openai_client`.
"""
