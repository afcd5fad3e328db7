"""The one table of exit statuses every loragate command uses (rendered into
``docs/verdict.md`` and ``loragate --help``).

0-5 keep pytest's meanings where they overlap (a gate session *is* a pytest run); 6 is none
of pytest's, so a CI job tells "the model is bad" (1) from "the gate could not run" (6).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    CLEARED = 0  # the model was judged and passed (or the command did its job)
    BLOCKED = 1  # judged and failed: the model, the text checked, the training run itself
    INTERNAL = 3  # a bug in loragate or a plugin (pytest's INTERNALERROR)
    USAGE = 4  # bad options, config or input files: nothing was judged
    NOTHING_TO_GATE = 5  # no gate item was collected
    GATE_ERROR = 6  # could not run or decide: a server, a tool, a judge, a disk


# What each status means for each command. Statuses a command never returns are absent; 3 (a
# bug) and 130 (Ctrl-C) can end any of them.
COMMAND_STATUSES: dict[str, dict[ExitCode, str]] = {
    "pytest --model / loragate gate": {
        ExitCode.CLEARED: "cleared: every ship gate passed, the overall score reached its "
                          "target, the canary rule held and no check or other test failed "
                          "(several --model: at least one candidate cleared)",
        ExitCode.BLOCKED: "blocked: the model was judged and failed (blocking_reasons), or an "
                          "ordinary test of the session failed (several --model: every "
                          "candidate)",
        ExitCode.USAGE: "usage error: bad option, spec, config, model file or prompt file; "
                        "no verdict written",
        ExitCode.NOTHING_TO_GATE: "nothing to gate: no harness or canary configured",
        ExitCode.GATE_ERROR: "error: the gate could not run or decide (model unreachable, "
                             "samples not generated, verdict not writable; several --model: "
                             "any candidate)",
    },
    "loragate pipeline": {
        ExitCode.CLEARED: "the tuned model's verdict is cleared",
        ExitCode.BLOCKED: "the tuned model's verdict is blocked",
        ExitCode.USAGE: "usage error (the config, the data, the gate's options)",
        ExitCode.NOTHING_TO_GATE: "the config gates nothing",
        ExitCode.GATE_ERROR: "a stage could not run, or the verdict is error or was not "
                             "written",
    },
    "loragate train": {
        ExitCode.CLEARED: "trained (or the adapter is up to date); a time budget may leave "
                          "the plan partly done, which the summary says",
        ExitCode.BLOCKED: "the run diverged (loss or gradient norm out of bounds)",
        ExitCode.USAGE: "bad config or data (the message names the file and line)",
        ExitCode.GATE_ERROR: "could not run: base model, device or dependency missing",
    },
    "loragate package": {
        ExitCode.CLEARED: "packaged (or up to date)",
        ExitCode.USAGE: "the adapter or the base model is missing or does not match",
        ExitCode.GATE_ERROR: "a tool failed: converter, quantizer, GGUF or Modelfile check",
    },
    "loragate report": {
        ExitCode.CLEARED: "rendered or compared; with --threshold or --rejudge: cleared",
        ExitCode.BLOCKED: "with --threshold or --rejudge: the new verdict is blocked",
        ExitCode.USAGE: "usage error: missing or unreadable verdict, bad option",
        ExitCode.GATE_ERROR: "with --threshold or --rejudge: the new verdict is error; with "
        "--rejudge: a judge cannot run here (the judges extra missing, its weights unreadable), "
        "and nothing is written",
    },
    "loragate check": {
        ExitCode.CLEARED: "every text passes the harness",
        ExitCode.BLOCKED: "a text fails the harness",
        ExitCode.USAGE: "unknown harness, unreadable file or config, bad option",
    },
    "loragate judges": {
        ExitCode.CLEARED: "every judge was measured",
        ExitCode.USAGE: "bad option or config",
        ExitCode.GATE_ERROR: "a judge could not be measured (calibration file, model)",
    },
    "loragate data": {
        ExitCode.CLEARED: "written, or (--check) the committed data is in step",
        ExitCode.BLOCKED: "--check: committed files differ from what the generator writes",
        ExitCode.USAGE: "bad option",
    },
    "loragate init": {
        ExitCode.CLEARED: "starter project written",
        ExitCode.USAGE: "a file exists (use --force) or the folder cannot be written",
    },
    "loragate serve": {
        ExitCode.CLEARED: "stopped by a signal, or (without a model) Ollama answers",
        ExitCode.BLOCKED: "the llama.cpp server exited on its own",
        ExitCode.USAGE: "no model and no Ollama, a missing or broken GGUF, a bad or taken "
                        "port, a bad config",
        ExitCode.GATE_ERROR: "the server could not start (a model llama.cpp cannot load)",
    },
    "loragate rag": {
        ExitCode.CLEARED: "the stores were filled",
        ExitCode.USAGE: "bad option or config",
        ExitCode.GATE_ERROR: "a store could not be reached or written",
    },
}


def status_table() -> str:
    """``COMMAND_STATUSES`` as a Markdown table: one row per command, one column per status."""
    columns = [code for code in ExitCode if code != ExitCode.INTERNAL]
    out = ["| command | " + " | ".join(str(int(c)) for c in columns) + " |",
           "|---|" + "---|" * len(columns)]
    for command, meanings in COMMAND_STATUSES.items():
        cells = [meanings.get(code, "—") for code in columns]
        out.append(f"| `{command}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def status_summary() -> str:
    """One line per status for ``--help`` epilogs."""
    names = {ExitCode.CLEARED: "cleared / done", ExitCode.BLOCKED: "blocked / failed",
             ExitCode.INTERNAL: "internal error", ExitCode.USAGE: "usage error",
             ExitCode.NOTHING_TO_GATE: "nothing to gate",
             ExitCode.GATE_ERROR: "could not run or decide"}
    return ("exit statuses: " + ", ".join(f"{int(code)} {names[code]}" for code in ExitCode)
            + " (per command: docs/verdict.md)")
