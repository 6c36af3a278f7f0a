#!/usr/bin/env bash
# ShareGPT pages -> clean Markdown conversations -> GPT-4 only -> tokenized samples.
#
#   ./run_data_pipeline.sh INPUT_FOLDER OUTPUT_FOLDER
#
# INPUT_FOLDER/ShareGPT/*.html are the pages. Into OUTPUT_FOLDER go
# sharegpt_clean.json (+ .report.json), sharegpt_gpt4.json and, per model type,
# T.train.json, T.eval.json, T.{train,eval}.text.json and T.report.json.
#
# Environment (all optional):
#   MODEL_TYPES   space-separated registry types          (default: openchat_tiny)
#   MODEL_PATHS   space-separated model folders, one per type, each with the EOT token
#                 (default for a *_tiny type: OUTPUT_FOLDER/models/T, built here if missing)
#   MODEL_FILTER  the `Model:` line to keep                  (default: "Model: GPT-4")
#   NUM_WORKERS   cleaning workers                           (default: all cores)
#   CLEAN_ARGS    extra clean_sharegpt flags, e.g. "--page_timeout 30 --max_page_bytes 8000000"
#   GENERATE_ARGS extra generate_dataset flags, e.g. "--split_long --eval_ratio 0.05"
#   PYTHON        interpreter (default: the repo's .venv if present, else python3)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { echo "usage: $0 INPUT_FOLDER OUTPUT_FOLDER   (pages in INPUT_FOLDER/ShareGPT/*.html)" >&2; exit 2; }
[ $# -eq 2 ] || usage
INPUT_FOLDER="$1"
OUTPUT_FOLDER="$2"
if [ ! -d "$INPUT_FOLDER" ]; then echo "error: input folder '$INPUT_FOLDER' does not exist" >&2; exit 1; fi
if [ ! -d "$INPUT_FOLDER/ShareGPT" ]; then
  echo "error: '$INPUT_FOLDER' has no ShareGPT/ folder; put the pages in $INPUT_FOLDER/ShareGPT/*.html" >&2; exit 1
fi
mkdir -p "$OUTPUT_FOLDER" || exit 1
if [ ! -w "$OUTPUT_FOLDER" ]; then echo "error: output folder '$OUTPUT_FOLDER' is not writable" >&2; exit 1; fi
INPUT_FOLDER="$(cd "$INPUT_FOLDER" && pwd)"
OUTPUT_FOLDER="$(cd "$OUTPUT_FOLDER" && pwd)"

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO_DIR/.venv/bin/python" ]; then PYTHON="$REPO_DIR/.venv/bin/python"; else PYTHON=python3; fi
fi
cd "$REPO_DIR"
read -r -a TYPES <<< "${MODEL_TYPES:-openchat_tiny}"
read -r -a PATHS <<< "${MODEL_PATHS:-}"
if [ "${#PATHS[@]}" -ne 0 ] && [ "${#PATHS[@]}" -ne "${#TYPES[@]}" ]; then
  echo "error: MODEL_PATHS has ${#PATHS[@]} entries but MODEL_TYPES has ${#TYPES[@]}" >&2; exit 1
fi
WORKER_ARGS=()
[ -z "${NUM_WORKERS:-}" ] || WORKER_ARGS=(--num_workers "$NUM_WORKERS")
# shellcheck disable=SC2206
CLEAN_EXTRA=(${CLEAN_ARGS:-})

# Model types and folders are checked before any stage runs: a wrong folder fails in
# seconds, not after the clean stage.
echo "== [0/3] check model types and folders"
for index in "${!TYPES[@]}"; do
  model_type="${TYPES[$index]}"
  "$PYTHON" -m data_pipeline.generate_dataset --check_only --model_type "$model_type" > /dev/null
  model_path="${PATHS[$index]:-}"
  if [ -z "$model_path" ]; then
    case "$model_type" in
      *_tiny) ;;
      *) echo "error: set MODEL_PATHS for $model_type (a model folder with <|end_of_turn|>, see ochat.models.add_eot_token)" >&2; exit 1 ;;
    esac
    echo "== the tiny $model_type model in $OUTPUT_FOLDER/models/$model_type (built when missing)"
    model_path="$("$PYTHON" -m ochat.models.tiny_chat_model --model_type "$model_type" \
      --work_dir "$OUTPUT_FOLDER/models/$model_type" | tail -n 1)"
  fi
  "$PYTHON" -m data_pipeline.generate_dataset --check_only --model_type "$model_type" --model_path "$model_path"
  PATHS[index]="$model_path"
done

# Outputs of an earlier run go first: a stage that fails must not leave them beside newer ones.
rm -f "$OUTPUT_FOLDER/sharegpt_clean.json" "$OUTPUT_FOLDER/sharegpt_clean.report.json" "$OUTPUT_FOLDER/sharegpt_gpt4.json"
for model_type in "${TYPES[@]}"; do
  rm -f "$OUTPUT_FOLDER/$model_type".{train,eval}.json "$OUTPUT_FOLDER/$model_type".{train,eval}.text.json \
    "$OUTPUT_FOLDER/$model_type.report.json"
done

echo "== [1/3] clean: $INPUT_FOLDER/ShareGPT -> $OUTPUT_FOLDER/sharegpt_clean.json"
"$PYTHON" -m data_pipeline.clean_sharegpt --in_dir "$INPUT_FOLDER/ShareGPT" \
  --out_file "$OUTPUT_FOLDER/sharegpt_clean.json" "${WORKER_ARGS[@]}" "${CLEAN_EXTRA[@]}"

echo "== [2/3] filter: keep '${MODEL_FILTER:-Model: GPT-4}' -> $OUTPUT_FOLDER/sharegpt_gpt4.json"
"$PYTHON" -m data_pipeline.filter_sharegpt --in_file "$OUTPUT_FOLDER/sharegpt_clean.json" \
  --out_file "$OUTPUT_FOLDER/sharegpt_gpt4.json" --model "${MODEL_FILTER:-Model: GPT-4}"

for index in "${!TYPES[@]}"; do
  model_type="${TYPES[$index]}"
  model_path="${PATHS[$index]}"
  echo "== [3/3] convert for $model_type with $model_path -> $OUTPUT_FOLDER/$model_type.*.json"
  # shellcheck disable=SC2086
  "$PYTHON" -m data_pipeline.generate_dataset --model_type "$model_type" --model_path "$model_path" \
    --in_file "$OUTPUT_FOLDER/sharegpt_gpt4.json" --out_dir "$OUTPUT_FOLDER" ${GENERATE_ARGS:-}
done
echo "== done: outputs in $OUTPUT_FOLDER"
