"""Which cleaned conversations the clean stage keeps, and why each other entry is not kept.

Over the workers' results in input order: a conversation whose hash was seen is a duplicate of
the first (in sorted file order), a different conversation under an id already kept is dropped
(`duplicate_id`), then the optional language and near-duplicate filters run
(`data_pipeline.conversation_filters`). Every entry gets one line in the report's `files`.
"""

import collections
from pathlib import Path

from data_pipeline.clean_report import NOT_HTML, entry_order
from data_pipeline.sharegpt_conversation import DUPLICATE_ID, display_name, printable

DUPLICATE = "duplicate"


def account(labelled_results, skipped_names=(), filters=None, sink=None):
    """Exact duplicates, then the optional filters, over `(label, result)` in order; every entry reported."""
    conversations = [] if sink is None else sink
    files = []
    dropped = collections.Counter()
    first_file_by_hash = {}
    file_by_kept_id = {}
    total = kept = 0
    for label, (conversation, reason, detail) in labelled_results:
        total += 1
        name = display_name(label.name if isinstance(label, Path) else label)
        if conversation is None:
            dropped[reason] += 1
            files.append(
                {"file": name, "status": "dropped", "reason": reason, **({"detail": detail} if detail else {})}
            )
        elif (digest := bytes.fromhex(conversation["hash"])) in first_file_by_hash:  # bytes: half a hex str's size
            files.append(
                {"file": name, "status": "duplicate", "reason": DUPLICATE, "duplicate_of": first_file_by_hash[digest]}
            )
        else:
            first_file_by_hash[digest] = name
            if conversation["id"] in file_by_kept_id:  # another conversation under the same id (e.g. 0 and "0")
                dropped[DUPLICATE_ID] += 1
                detail = f"id {conversation['id']!r} is taken by {file_by_kept_id[conversation['id']]}"
                files.append({"file": name, "status": "dropped", "reason": DUPLICATE_ID, "detail": printable(detail)})
                continue
            verdict = filters.check(conversation, name) if filters is not None and filters.active else None
            if verdict is not None:
                dropped[verdict["reason"]] += 1
                files.append({"file": name, "status": "dropped", **verdict})
                continue
            file_by_kept_id[conversation["id"]] = name
            conversations.append(conversation)
            kept += 1
            files.append({"file": name, "status": "kept", "id": conversation["id"]})
    files += [{"file": display_name(name), "status": "skipped", "reason": NOT_HTML} for name in skipped_names]
    files.sort(key=lambda entry: entry_order(entry["file"]))
    return {
        "conversations": conversations,
        "entries": total + len(skipped_names),
        "total_files": total,
        "kept": kept,
        "duplicates": sum(1 for entry in files if entry["status"] == "duplicate"),
        "dropped": dict(sorted(dropped.items())),
        "skipped": len(skipped_names),
        **(filters.report_fields() if filters is not None else {}),
        "files": files,
    }
