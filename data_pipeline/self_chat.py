"""Self-chat (Baize): a chat model writes multi-turn dialogues about seed questions, as training data.

Two methods (`--method`):

- `transcript` (Baize's own): one request per seed asks the model for the whole dialogue
  between a human and an AI, each statement starting with `[Human]` or `[AI]`; the reply is
  parsed. A reply without alternating markers, or with an empty statement, is unparseable.
- `roleplay`: alternating requests; the model answers as the assistant, then writes the
  human's next message from a role-play prompt (or `[END]` when it has nothing to ask),
  until `--max_rounds` rounds. Costs 2 requests a round, but needs no parsing.

Which gives more valid dialogues was measured (`benchmarks/self_chat.py`); `roleplay` is
the default because only it produced valid dialogues from a small model, and a capable
model scores alike on both. Dialogues are cut to `--max_rounds` human/AI rounds.

Seeds (`--seeds`): a text file, one question a line, or JSONL with a `text` field.

Output (`--out_file`): a ShareGPT JSON dump, in seed order, which `clean_sharegpt` (as
`INPUT/ShareGPT/*.json` or `--in_file`) and `import_conversations --format sharegpt_json` read.
`model` is `--label`, the label the filters select by (`Model: GPT-4` is what
`filter_sharegpt` keeps by default; with `--mode c-rlft`, a label mapped by `--conditions`),
else the served model's name, which neither filter keeps; `generator` is the served model:

    [{"id": "self_chat-0", "model": "Model: GPT-4", "generator": "gpt-4", "source": "self_chat", "method": "roleplay",
      "seed": "How do I learn Rust?",
      "conversations": [{"from": "human", "value": "How do I learn Rust?"}, {"from": "gpt", "value": "..."}]}]

Every finished seed is appended to `OUT.log.jsonl` as it returns (flushed at once), one line
per seed: `{"seed_index", "seed", "status": "valid"|"unparseable"|"failed", "conversation", "raw",
"error", "requests"}`. `--continue` keeps the valid and unparseable ones and asks again only
for seeds missing from the log or failed on transport errors. Unparseable dialogues are
counted in the summary and kept only in the log, never in the output.

    python -m data_pipeline.self_chat --seeds seeds.txt --api_base https://api.openai.com/v1 \\
        --model gpt-4 --label "Model: GPT-4" --max_rounds 3 --parallel 8 --out_file INPUT/ShareGPT/self_chat.json
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from ochat.utils.append_log import CallLog
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic
from ochat.utils.openai_client import ChatClient, ChatRequestError, add_client_args, gather_with_progress

METHODS = ("roleplay", "transcript")
DEFAULT_METHOD = "roleplay"
END_MARKER = "[END]"

# Baize's self-chat template (Xu et al., 2023), with the topic filled in.
TRANSCRIPT_PROMPT = (
    "Forget the instruction you have previously received. The following is a conversation between a human "
    "and an AI assistant. The human and the AI assistant take turns chatting about the topic: '{seed}'. "
    "Human statements start with [Human] and AI assistant statements start with [AI]. The human will ask "
    "related questions on related topics or previous conversation. The human will stop the conversation "
    "when they have no question. The AI assistant tries not to ask questions. Write at most {rounds} rounds. "
    "Complete the transcript in exactly that format, starting with the human's question.\n[Human] {seed}\n[AI] "
)
ASSISTANT_SYSTEM = "You are a helpful, knowledgeable AI assistant."
HUMAN_ROLEPLAY_SYSTEM = (
    "You are playing a curious human who is chatting with an AI assistant about: '{seed}'. Write only the "
    "human's next message: a follow-up question on the topic or on the assistant's last answer. If you have "
    "no more questions, reply with " + END_MARKER + " alone."
)
MARKER = re.compile(r"\[(Human|AI)\]")


def main():
    args = parse_args()
    seeds = load_seeds(args.seeds)
    run = SelfChatRun(args.out_file, seeds, args)
    asyncio.run(run.generate())
    run.write_output()
    print(run.summary())


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.self_chat",
        description="Generate multi-turn dialogues from seed questions with an OpenAI-compatible chat model "
        "(Baize's self-chat); writes a ShareGPT JSON dump labelled with the model.",
    )
    parser.add_argument("--seeds", type=Path, required=True, help="questions: one a line, or JSONL with `text`")
    parser.add_argument("--model", required=True, help="the model name the endpoint serves")
    parser.add_argument(
        "--label",
        default=None,
        help='the `model` label written on each dialogue, which the filters select by: "Model: GPT-4" is kept by '
        "filter_sharegpt's default, other labels need --model or a --conditions mapping there "
        "(default: the --model name, which neither filter keeps)",
    )
    parser.add_argument("--out_file", type=Path, required=True, help="output ShareGPT JSON, e.g. self_chat.json")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="roleplay: alternating calls; transcript: one [Human]/[AI] transcript per seed (default %(default)s)",
    )
    parser.add_argument("--max_rounds", type=int, default=3, help="most human/AI rounds a dialogue keeps (default 3)")
    parser.add_argument("--max_tokens", type=int, default=512, help="longest reply per request (default 512)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--seed", type=int, default=0, help="request seed, for endpoints that honour it (default 0)")
    parser.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="resume an interrupted run: keep finished seeds from the log, ask the rest",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard an earlier run's log and start again")
    add_client_args(parser, default_parallel=8)
    args = parser.parse_args(argv)
    if args.max_rounds < 1:
        parser.error("--max_rounds must be at least 1")
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")
    return args


def load_seeds(path):
    """Seed questions from a text file (one a line) or JSONL (`{"text": ...}` a line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"error: cannot read seeds {path}: {error}")
    seeds = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                text = json.loads(line).get("text")
            except (json.JSONDecodeError, AttributeError):
                text = None
            if not isinstance(text, str) or not text.strip():
                sys.exit(f"error: {path}:{number}: a JSONL seed needs a non-empty string `text`")
            seeds.append(text.strip())
        else:
            seeds.append(line.strip())
    if not seeds:
        sys.exit(f"error: no seed questions in {path}")
    return seeds


# ----------------------------------------------------------------------------- parsing a transcript


def parse_transcript(text, seed, max_rounds):
    """[(role, text)] from a `[Human]`/`[AI]` transcript, or None when it is unparseable.

    The prompt ends with `[Human] SEED\\n[AI] `, so text before the first marker is the
    AI's first answer (a model that writes the markers again from the start is read too).
    The transcript must go on past that answer with a `[Human]` statement (it is a
    multi-turn format; a reply without markers did not follow it), unless one round is
    all that was asked. Statements alternate and none is empty (but an empty last one,
    a reply cut off after its marker, is dropped); a trailing human
    statement is dropped and the dialogue cut to `max_rounds` rounds.
    """
    pieces = MARKER.split(text)
    statements = [
        ("human" if marker == "Human" else "gpt", statement.strip())
        for marker, statement in zip(pieces[1::2], pieces[2::2])
    ]
    while statements and not statements[-1][1]:  # a reply cut off right after a marker
        statements.pop()
    first_answer = pieces[0].strip()
    if not first_answer:
        if statements and statements[0] == ("human", seed.strip()):
            statements = statements[1:]
        if not statements or statements[0][0] != "gpt":
            return None
        first_answer, statements = statements[0][1], statements[1:]
    if max_rounds > 1 and not any(role == "human" for role, _ in statements):
        return None
    turns = [("human", seed), ("gpt", first_answer)] + statements
    if any(role != ("human" if index % 2 == 0 else "gpt") for index, (role, _) in enumerate(turns)):
        return None
    if turns[-1][0] == "human":
        turns = turns[:-1]
    turns = turns[: 2 * max_rounds]
    if any(not statement for _, statement in turns):
        return None
    return turns


# ----------------------------------------------------------------------------- the run


def seed_key(index: int, seed: str) -> tuple:
    """A seed's key in the call log: its place and its text, so an edited seeds file asks changed seeds again."""
    return (index, seed)


class SelfChatRun:
    """Dialogues for every seed, with the append-only log that makes a run resumable."""

    def __init__(self, out_file, seeds, args):
        self.out_file = Path(out_file)
        self.seeds = seeds
        self.args = args
        self.log_path = self.out_file.with_name(self.out_file.stem + ".log.jsonl")
        self.log = CallLog(self.log_path, resume=args.resume, overwrite=args.overwrite)
        self.results = {}  # seed index -> log entry, for seeds whose logged text is still the same
        for index, seed in enumerate(seeds):
            entry = self.log.get(seed_key(index, seed))
            if entry is not None:
                self.results[index] = entry

    def pending(self):
        """Seeds never finished, or ended on a transport error."""
        return [index for index, seed in enumerate(self.seeds) if self.log.needs(seed_key(index, seed))]

    async def generate(self):
        pending = self.pending()
        if not pending:
            print("every seed is already in the log; rebuilding the output only", file=sys.stderr)
            return
        async with ChatClient.from_args(self.args) as client:
            await gather_with_progress([self.dialogue(client, index) for index in pending], "self-chat")

    async def dialogue(self, client, index):
        seed = self.seeds[index]
        method = roleplay_dialogue if self.args.method == "roleplay" else transcript_dialogue
        entry = {
            "key": list(seed_key(index, seed)),
            "seed_index": index,
            "seed": seed,
            "method": self.args.method,
            "model": self.args.model,
        }
        try:
            turns, raw, requests = await method(client, seed, self.args)
            entry.update(
                status="valid" if turns else "unparseable", conversation=turns, raw=raw, error=None, requests=requests
            )
        except ChatRequestError as error:
            print(f"self-chat failed for seed {index}: {error}", file=sys.stderr)
            entry.update(status="failed", conversation=None, raw=None, error=str(error), requests=None)
        self.record(entry)

    def record(self, entry):
        self.log.record(entry)
        self.results[entry["seed_index"]] = entry

    def write_output(self):
        self.log.close()
        dump = []
        for index in range(len(self.seeds)):
            entry = self.results.get(index)
            if entry is None or entry["status"] != "valid":
                continue
            dump.append(
                {
                    "id": f"self_chat-{index}",
                    "model": self.args.label or entry["model"],
                    "generator": entry["model"],
                    "source": "self_chat",
                    "method": entry["method"],
                    "seed": entry["seed"],
                    "conversations": [{"from": role, "value": text} for role, text in entry["conversation"]],
                }
            )
        write_json_atomic(self.out_file, dump)

    def counts(self):
        counts = {"seeds": len(self.seeds), "valid": 0, "unparseable": 0, "failed": 0, "missing": 0}
        for index in range(len(self.seeds)):
            entry = self.results.get(index)
            counts[entry["status"] if entry else "missing"] += 1
        return counts

    def summary(self):
        counts = self.counts()
        lines = [f"{name:<12}{count:>8}" for name, count in counts.items()]
        lines.append(f"dialogues -> {self.out_file}   log: {self.log_path}")
        if counts["failed"]:
            lines.append("some seeds failed on transport errors; run again with --continue to ask them again")
        return "\n".join(lines)


async def transcript_dialogue(client, seed, args):
    """Baize: one request for the whole transcript, then parse it."""
    prompt = TRANSCRIPT_PROMPT.format(seed=seed, rounds=args.max_rounds)
    reply = await client.chat(
        args.model,
        [{"role": "user", "content": prompt}],
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    return parse_transcript(reply, seed, args.max_rounds), reply, 1


async def roleplay_dialogue(client, seed, args):
    """Alternate: the model answers as the assistant, then writes the human's next message."""
    turns, requests = [("human", seed)], 0
    for round_index in range(args.max_rounds):
        answer_messages = [{"role": "system", "content": ASSISTANT_SYSTEM}] + [
            {"role": "user" if role == "human" else "assistant", "content": text} for role, text in turns
        ]
        answer = (
            await client.chat(
                args.model, answer_messages, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
            )
        ).strip()
        requests += 1
        if not answer:
            break
        turns.append(("gpt", answer))
        if round_index + 1 == args.max_rounds:
            break
        # Seen from the role-played human, the assistant's words are the other party's (user) turns.
        human_messages = [{"role": "system", "content": HUMAN_ROLEPLAY_SYSTEM.format(seed=seed)}] + [
            {"role": "assistant" if role == "human" else "user", "content": text} for role, text in turns
        ]
        question = (
            await client.chat(
                args.model, human_messages, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
            )
        ).strip()
        requests += 1
        if not question or END_MARKER in question:
            break
        turns.append(("human", question))
    if turns[-1][0] == "human":
        turns = turns[:-1]
    return (turns if len(turns) >= 2 else None), None, requests


if __name__ == "__main__":
    main()
