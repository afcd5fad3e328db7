"""The tool-aware prompt builder: does a request need a tool, which examples help, what fits.

1. **Tool need.** A logistic regression on all-MiniLM-L6-v2 embeddings (plus the prompt's
   TF-IDF word weights), trained on the tool
   example requests (positives) and the corpus's knowledge-only requests (negatives). A keyword
   list calls "what does git pull --no-edit do?" a tool request and misses "bring my branch up to
   date"; the classifier learns the intent (act on the workspace or not) from whole sentences.
   Its precision and recall are measured on ``data/rag/tool_need_labelled.jsonl``, a held-out
   set none of whose prompts is in the training data.
2. **Examples.** The ``n`` most similar tool examples, filtered by tool ecosystem (given by the
   caller or voted by the nearest unfiltered examples).
3. **Budget.** The prompt is rendered and counted with the model's tokenizer (its chat template
   when it has one); the least similar examples are dropped first until it fits. The user's
   request is never cut: if it does not fit with the instructions alone, :class:`PromptTooLong`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loragate.rag.chroma_store import ChromaStore, RetrievedExample
from loragate.rag.corpus import (
    LABELLED_FILE,
    TOOL_EXAMPLES_FILE,
    TOOL_NEED_TRAIN_FILE,
    load_labelled_prompts,
    load_tool_examples,
)
from loragate.rag.embeddings import Embedder

# The wire form of a chat message (what a backend's generate takes as a dict), not a type of
# its own: loragate.backends.base.Message is the typed one.
Message = dict[str, str]
TokenCounter = Callable[[Sequence[Message]], int]

DEFAULT_SYSTEM_PROMPT = (
    "You are a Web4 development agent. Follow the Web4 method: PDCA documents in the current "
    "template, TRON decisions, empty constructors with init(scenario), and stop or ask when a "
    "request breaks the process rules."
)
TOOL_INSTRUCTIONS = (
    "Tools: read_file(path), write_file(path, content), edit_file(path, old, new), "
    "list_files(path), search(query, path?), run_command(command). To use one, answer with a "
    'JSON object {"tool": NAME, "arguments": {...}}. Commands are non-interactive '
    "(git pull --no-edit, npm install --yes); Web4 CLI tools take positional arguments."
)


class PromptTooLong(ValueError):
    """The user's request does not fit the context budget even with every example dropped."""


# -- tool need ------------------------------------------------------------------------------


class ToolNeedClassifier:
    """Logistic regression on a sentence embedding and the sentence's TF-IDF word weights.

    The embedding carries the topic and most of the intent; the TF-IDF part lets the model
    learn which words mark a question about this workspace ("our", "we", "my branch") and which
    mark general knowledge ("usually", "explain", "don't run it"), weights no keyword list has.
    """

    def __init__(self, embedder: Embedder, threshold: float = 0.5, c: float = 4.0) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.c = c
        self._vectorizer: Any = None
        self._model: Any = None

    def _features(self, prompts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix, hstack

        embedded = csr_matrix(self.embedder.embed(list(prompts)))
        return hstack([embedded, self._vectorizer.transform(list(prompts))]).tocsr()

    def fit(self, positives: Sequence[str], negatives: Sequence[str]) -> ToolNeedClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if not positives or not negatives:
            raise ValueError("the tool-need classifier needs positive and negative examples")
        prompts = list(positives) + list(negatives)
        y = np.array([1] * len(positives) + [0] * len(negatives))
        self._vectorizer = TfidfVectorizer(sublinear_tf=True).fit(prompts)
        self._model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
        self._model.fit(self._features(prompts), y)
        return self

    def probabilities(self, prompts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("ToolNeedClassifier.fit must be called first")
        return self._model.predict_proba(self._features(prompts))[:, 1]

    def predict(self, prompts: Sequence[str]) -> np.ndarray:
        return self.probabilities(prompts) >= self.threshold

    @classmethod
    def from_corpus(cls, embedder: Embedder, corpus_dir: Path, **kwargs: Any) -> ToolNeedClassifier:
        train = load_labelled_prompts(corpus_dir / TOOL_NEED_TRAIN_FILE)
        positives = [e.request for e in load_tool_examples(corpus_dir / TOOL_EXAMPLES_FILE)]
        positives += [p for p, needs_tool in train if needs_tool]
        negatives = [p for p, needs_tool in train if not needs_tool]
        return cls(embedder, **kwargs).fit(positives, negatives)


@dataclass(frozen=True)
class ToolNeedReport:
    precision: float
    recall: float
    f1: float
    n: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    errors: list[tuple[str, bool]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"tool-need on {self.n} labelled prompts: precision {self.precision:.3f}, "
                f"recall {self.recall:.3f}, F1 {self.f1:.3f} (TP {self.true_positives}, "
                f"FP {self.false_positives}, FN {self.false_negatives}, "
                f"TN {self.true_negatives})")


def evaluate_tool_need(classifier: ToolNeedClassifier,
                       labelled: Sequence[tuple[str, bool]]) -> ToolNeedReport:
    """Precision, recall and F1 of the classifier (needs a tool = positive class)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    prompts = [p for p, _ in labelled]
    truth = np.array([label for _, label in labelled], dtype=bool)
    predicted = classifier.predict(prompts)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="binary", pos_label=True, zero_division=0
    )
    tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[False, True]).ravel()
    errors = [(p, bool(t)) for p, t, q in zip(prompts, truth, predicted, strict=True) if t != q]
    return ToolNeedReport(float(precision), float(recall), float(f1), len(labelled), int(tp),
                          int(fp), int(fn), int(tn), errors)


def evaluate_corpus(classifier: ToolNeedClassifier, corpus_dir: Path) -> ToolNeedReport:
    return evaluate_tool_need(classifier, load_labelled_prompts(corpus_dir / LABELLED_FILE))


# -- token counting and assembly ------------------------------------------------------------


def _encode_length(tokenizer: Any, text: str) -> int:
    try:
        return len(tokenizer.encode(text, add_special_tokens=False))
    except TypeError:
        return len(tokenizer.encode(text))


def render_plain(messages: Sequence[Message]) -> str:
    """The rendering used when the tokenizer has no chat template."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


def token_counter(tokenizer: Any) -> TokenCounter:
    """Counts a message list as the model will see it: through the chat template if any."""
    if getattr(tokenizer, "chat_template", None) and hasattr(tokenizer, "apply_chat_template"):
        def count(messages: Sequence[Message]) -> int:
            text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                 add_generation_prompt=True)
            return _encode_length(tokenizer, text)
    else:
        def count(messages: Sequence[Message]) -> int:
            return _encode_length(tokenizer, render_plain(messages))
    return count


def format_example(example: RetrievedExample) -> str:
    call = json.dumps({"tool": example.tool, "arguments": example.arguments}, ensure_ascii=False)
    return f"Example ({example.tool_ecosystem}):\nUser: {example.request}\nCall: {call}"


@dataclass(frozen=True)
class AssembledPrompt:
    messages: list[Message]
    kept_examples: int
    dropped_examples: int
    token_count: int


def _messages(system: str, example_blocks: Sequence[str], request: str) -> list[Message]:
    system_text = "\n\n".join([system, *example_blocks])
    return [{"role": "system", "content": system_text}, {"role": "user", "content": request}]


def assemble_prompt(system: str, example_blocks: Sequence[str], request: str,
                    count_tokens: TokenCounter, budget_tokens: int) -> AssembledPrompt:
    """System text, then as many of ``example_blocks`` (best first) as fit, then the request.

    Examples are dropped from the end (the least relevant) until the whole prompt is within
    ``budget_tokens``; the request is passed through verbatim or the call fails.
    """
    if budget_tokens <= 0:
        raise ValueError(f"the context budget must be positive, got {budget_tokens}")
    # Drop the least relevant example until the prompt fits; each try is counted in full
    # because token counts of concatenated text are not additive.
    best: tuple[list[Message], int, int] | None = None
    for kept in range(len(example_blocks), -1, -1):
        messages = _messages(system, example_blocks[:kept], request)
        tokens = count_tokens(messages)
        if tokens <= budget_tokens:
            best = (messages, tokens, kept)
            break
    if best is None:
        bare = count_tokens(_messages(system, [], request))
        request_tokens = count_tokens([{"role": "user", "content": request}])
        raise PromptTooLong(
            f"the request is about {request_tokens} tokens; with the instructions the prompt is "
            f"{bare} tokens, over the context budget of {budget_tokens} tokens. The request is "
            f"never trimmed: shorten it or raise rag.context_budget_tokens"
        )
    messages, tokens, kept = best
    return AssembledPrompt(messages, kept, len(example_blocks) - kept, tokens)


# -- the builder ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[Message]
    request: str
    needs_tool: bool
    tool_probability: float
    ecosystem: str | None
    examples: list[RetrievedExample]
    dropped_examples: int
    token_count: int
    budget_tokens: int


class ToolAwarePromptBuilder:
    """Builds the prompt for one request: tool instructions and examples only when needed."""

    def __init__(self, store: ChromaStore, classifier: ToolNeedClassifier, tokenizer: Any, *,
                 budget_tokens: int, n_examples: int = 3,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, vote_k: int = 5) -> None:
        self.store = store
        self.classifier = classifier
        self.count_tokens = token_counter(tokenizer)
        self.budget_tokens = budget_tokens
        self.n_examples = n_examples
        self.system_prompt = system_prompt
        self.vote_k = vote_k

    @classmethod
    def from_corpus(cls, store: ChromaStore, corpus_dir: Path, tokenizer: Any,
                    **kwargs: Any) -> ToolAwarePromptBuilder:
        classifier = ToolNeedClassifier.from_corpus(store.embedder, corpus_dir)
        return cls(store, classifier, tokenizer, **kwargs)

    def needs_tool(self, request: str) -> bool:
        return bool(self.classifier.predict([request])[0])

    def choose_ecosystem(self, request: str) -> str | None:
        """The ecosystem whose examples are, summed over the nearest ``vote_k``, most similar."""
        votes: dict[str, float] = {}
        for example in self.store.query_tool_examples(request, self.vote_k):
            votes[example.tool_ecosystem] = votes.get(example.tool_ecosystem, 0.0) + max(
                example.similarity, 0.0)
        return max(votes, key=lambda k: votes[k]) if votes else None

    def build(self, request: str, ecosystem: str | None = None) -> BuiltPrompt:
        probability = float(self.classifier.probabilities([request])[0])
        needs_tool = probability >= self.classifier.threshold
        examples: list[RetrievedExample] = []
        system = self.system_prompt
        if needs_tool:
            ecosystem = ecosystem or self.choose_ecosystem(request)
            examples = self.store.query_tool_examples(request, self.n_examples, ecosystem)
            system = f"{self.system_prompt}\n\n{TOOL_INSTRUCTIONS}"
        assembled = assemble_prompt(system, [format_example(e) for e in examples], request,
                                    self.count_tokens, self.budget_tokens)
        return BuiltPrompt(
            messages=assembled.messages, request=request, needs_tool=needs_tool,
            tool_probability=probability, ecosystem=ecosystem if needs_tool else None,
            examples=examples[: assembled.kept_examples],
            dropped_examples=assembled.dropped_examples, token_count=assembled.token_count,
            budget_tokens=self.budget_tokens,
        )
