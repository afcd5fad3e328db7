"""The one table of exit statuses every loragate command uses (``docs/verdict.md``).

0-5 are pytest's own meanings where they overlap (a gate session *is* a pytest run); 6 is
none of pytest's, so a CI job tells "the model is bad" (1) from "the gate could not run" (6).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    CLEARED = 0  # the model was judged and passed (or the command did its job)
    BLOCKED = 1  # the model was judged and failed, or an ordinary test failed beside the gates
    INTERNAL = 3  # a bug in loragate or a plugin (pytest's INTERNALERROR)
    USAGE = 4  # bad options, config or input files: nothing was judged
    NOTHING_TO_GATE = 5  # no gate item was collected
    GATE_ERROR = 6  # the gate could not run or decide: model unreachable, a judge or cache broken
