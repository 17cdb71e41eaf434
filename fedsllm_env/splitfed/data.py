"""Training data of the split-federated engine: a synthetic E2E-style data-to-text task, a separate
pre-training corpus, local file loading, tokenisation into fixed-length sequences and client partitions.

The E2E-style task pairs a meaning representation (MR) such as
``name[The Eagle] | eatType[pub] | food[French] | area[riverside]`` with a fluent reference sentence
realised from several templates; one training text is ``"MR => sentence"`` followed by the end-of-sequence
token. The loss is computed on the sentence (and end token) only, i.e. the task is conditional generation.

The pre-training corpus (used once to pre-train the locally built tiny GPT-2) consists of plain
descriptive sentences about towns, food and places *without* the MR format, so LoRA fine-tuning on the
E2E task is a real adaptation. Everything is generated from explicit ``numpy.random.Generator`` objects
(no global RNG).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "Example",
    "GENERATOR_VERSION",
    "SEPARATOR",
    "generate_e2e",
    "generate_pretrain_corpus",
    "lexicon_text",
    "load_examples",
    "load_task",
    "partition",
    "EncodedSet",
    "encode_examples",
    "ClientSampler",
]

GENERATOR_VERSION = 1
"""Bump when the synthetic generators change (part of the tiny-model cache key)."""

SEPARATOR = "=>"
"""Token between the meaning representation and the reference sentence."""

NAMES = ("The Eagle", "The Mill", "Blue Spice", "The Punter", "Alimentum", "Aromi", "Bibimbap House",
         "Browns Cambridge", "Clowns", "Cocum", "Cotto", "Fitzbillies", "Giraffe", "Green Man", "Loch Fyne",
         "Midsummer House", "Strada", "Taste of Cambridge", "The Cambridge Blue", "The Cricketers",
         "The Dumpling Tree", "The Golden Curry", "The Golden Palace", "The Olive Grove", "The Phoenix",
         "The Plough", "The Rice Boat", "The Twenty Two", "The Vaults", "The Wrestlers", "Wildwood", "Zizzi")
EAT_TYPES = ("pub", "coffee shop", "restaurant")
FOODS = ("French", "Italian", "Chinese", "Indian", "Japanese", "English", "Fast food")
PRICES = ("cheap", "moderate", "high", "less than £20", "£20-25", "more than £30")
RATINGS = ("low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5")
AREAS = ("riverside", "city centre")
NEARS = ("Burger King", "Café Adriatic", "Café Brazil", "Café Rouge", "Café Sicilia", "Crowne Plaza Hotel",
         "Express by Holiday Inn", "Rainbow Vegetarian Café", "Raja Indian Cuisine", "Ranch", "The Bakers",
         "The Portland Arms", "The Sorrento", "Yippee Noodle Bar", "All Bar One", "Avalon", "Clare Hall")
OPTIONAL_KEYS = ("eatType", "food", "priceRange", "customer rating", "area", "familyFriendly", "near")
TOWNS = ("Cambridge", "Oxford", "York", "Bath", "Norwich", "Ely", "Durham", "Chester")
PEOPLE = ("Anna", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Harry", "my friend", "the family")


@dataclass(frozen=True)
class Example:
    """One text example.

    Attributes:
        text: Full training text (without the end-of-sequence token).
        prompt: Prefix whose tokens get no loss ("" = loss on every token).
        label: Category used by the non-IID partition (venue type of an MR, else the first word).
    """

    text: str
    prompt: str
    label: str


# ---- synthetic E2E-style task -------------------------------------------------------------------
def _price_phrase(p: str, rng: np.random.Generator) -> str:
    if p in ("cheap", "moderate", "high"):
        forms = (f"with a {p} price range", f"in the {p} price range", f"where prices are {p}")
    else:
        forms = (f"with prices {p}", f"with a price range of {p}", f"where meals cost {p}")
    return str(rng.choice(forms))


def _rating_phrase(r: str, rng: np.random.Generator) -> str:
    forms = (f"with a {r} customer rating", f"rated {r} by customers", f"that has a {r} rating")
    return str(rng.choice(forms))


def _family_sentence(name: str, yes: bool, rng: np.random.Generator) -> str:
    if yes:
        forms = ("It is family friendly.", f"{name} is kid friendly.", "Children are welcome.")
    else:
        forms = ("It is not family friendly.", f"{name} is not kid friendly.", "It does not welcome children.")
    return str(rng.choice(forms))


def _realise(mr: dict[str, str], rng: np.random.Generator) -> str:
    """A reference sentence for one MR from randomly chosen templates and clause orders."""
    name = mr["name"]
    venue = mr.get("eatType", "place")
    food = mr.get("food")
    food_adj = f"{food} " if food and food != "Fast food" else ("fast food " if food else "")
    head_forms = [f"{name} is a {food_adj}{venue}", f"There is a {food_adj}{venue} called {name}",
                  f"{name} , a {food_adj}{venue} ,"]
    if "area" in mr:
        head_forms.append(f"Located in the {mr['area']} , {name} is a {food_adj}{venue}")
    head = str(rng.choice(head_forms))
    clauses: list[str] = []
    if "area" in mr and "Located" not in head:
        clauses.append(str(rng.choice((f"in the {mr['area']}", f"located in the {mr['area']}"))))
    if "near" in mr:
        clauses.append(str(rng.choice((f"near {mr['near']}", f"close to {mr['near']}"))))
    if "priceRange" in mr:
        clauses.append(_price_phrase(mr["priceRange"], rng))
    if "customer rating" in mr:
        clauses.append(_rating_phrase(mr["customer rating"], rng))
    order = rng.permutation(len(clauses))
    clauses = [clauses[i] for i in order]
    first, rest = clauses[:2], clauses[2:]
    sentence = " ".join([head] + first).replace(", ,", ",").rstrip(" ,") + " ."
    for c in rest:
        sentence += " " + str(rng.choice(("It is", "It is also", "The venue is"))) + " " + c + " ."
    if "familyFriendly" in mr:
        sentence += " " + _family_sentence(name, mr["familyFriendly"] == "yes", rng).replace(".", " .")
    return " ".join(sentence.split())


def _random_mr(rng: np.random.Generator) -> dict[str, str]:
    n_opt = int(rng.integers(2, 5))  # 2..4 optional attributes besides the name
    keys = sorted(rng.choice(len(OPTIONAL_KEYS), size=n_opt, replace=False).tolist())
    values = {"eatType": EAT_TYPES, "food": FOODS, "priceRange": PRICES, "customer rating": RATINGS,
              "area": AREAS, "familyFriendly": ("yes", "no"), "near": NEARS}
    mr = {"name": str(rng.choice(NAMES))}
    for i in keys:
        key = OPTIONAL_KEYS[i]
        mr[key] = str(rng.choice(values[key]))
    return mr


def _mr_string(mr: dict[str, str]) -> str:
    return " | ".join(f"{k}[{v}]" for k, v in mr.items())


def generate_e2e(num_examples: int, seed: int) -> list[Example]:
    """Generate ``num_examples`` E2E-style (MR => reference) examples, deterministic in ``seed``."""
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE2E]))
    out: list[Example] = []
    for _ in range(num_examples):
        mr = _random_mr(rng)
        prompt = f"{_mr_string(mr)} {SEPARATOR}"
        out.append(Example(f"{prompt} {_realise(mr, rng)}", prompt, mr.get("eatType", "none")))
    return out


def generate_pretrain_corpus(num_sentences: int, seed: int) -> list[str]:
    """Plain descriptive sentences about towns, food and places (no MR format), deterministic in ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E7]))
    templates = (
        "{town} is a {adj} town with many {venue_pl} .",
        "{person} went to {name} in {town} for some {food} food .",
        "The {area} of {town} is a {adj} place to walk in the evening .",
        "{name} is near {near} and it is a {adj} {venue} .",
        "Many people in {town} like {food} food because it is {adj} .",
        "Prices at {name} are {price} and the food is {adj} .",
        "{person} said that {name} was {adj} and {adj2} .",
        "You can find {food} food in the {area} of {town} .",
        "The old {venue} by the river in {town} is {adj} .",
        "Families with children often visit {name} on Sunday .",
        "Customers gave {name} a rating of {rating} last year .",
        "If you are hungry in {town} , try {name} near {near} .",
    )
    adjs = ("quiet", "busy", "lovely", "small", "friendly", "popular", "nice", "old", "modern", "cheap",
            "expensive", "good", "famous", "pleasant")
    venues = ("pub", "coffee shop", "restaurant", "bakery", "market", "hotel")
    out: list[str] = []
    for _ in range(num_sentences):
        tpl = str(rng.choice(templates))
        venue = str(rng.choice(venues))
        out.append(tpl.format(
            town=rng.choice(TOWNS), adj=rng.choice(adjs), adj2=rng.choice(adjs), venue=venue,
            venue_pl=venue + "s", person=rng.choice(PEOPLE), name=rng.choice(NAMES),
            food=str(rng.choice(FOODS)).lower(), area=rng.choice(AREAS), near=rng.choice(NEARS),
            price=rng.choice(PRICES), rating=rng.choice(RATINGS)))
    return out


def lexicon_text() -> str:
    """Every word the generators can emit, so a word-level vocabulary built from it is complete."""
    e2e = generate_e2e(3000, seed=12345)
    words = list(NAMES + EAT_TYPES + FOODS + PRICES + RATINGS + AREAS + NEARS + OPTIONAL_KEYS + TOWNS + PEOPLE)
    return "\n".join(words + [e.text for e in e2e] + generate_pretrain_corpus(3000, seed=12345))


# ---- local files ------------------------------------------------------------------------------
def _example_from_text(text: str) -> Example:
    text = " ".join(text.split())
    if f" {SEPARATOR} " in f" {text} ":
        head = text.split(SEPARATOR, 1)[0].strip()
        prompt = f"{head} {SEPARATOR}".strip()
    else:
        prompt = ""
    label = text.split()[0] if text else ""
    if "eatType[" in text:
        label = text.split("eatType[", 1)[1].split("]", 1)[0]
    return Example(text, prompt, label)


def load_examples(path: str | Path) -> list[Example]:
    """Read examples from a local ``.txt`` (one per non-empty line) or ``.jsonl`` file.

    ``.jsonl`` objects need ``"text"`` or both ``"mr"`` and ``"ref"`` (joined as ``"mr => ref"``).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Unknown extension, malformed JSON line, or no examples in the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset file {str(p)!r} does not exist (expected 'e2e-synthetic' or a local "
                                ".txt / .jsonl path)")
    suffix = p.suffix.lower()
    out: list[Example] = []
    if suffix == ".txt":
        out = [_example_from_text(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif suffix == ".jsonl":
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({e})") from e
            if isinstance(obj, dict) and isinstance(obj.get("text"), str):
                out.append(_example_from_text(obj["text"]))
            elif isinstance(obj, dict) and isinstance(obj.get("mr"), str) and isinstance(obj.get("ref"), str):
                out.append(_example_from_text(f"{obj['mr']} {SEPARATOR} {obj['ref']}"))
            else:
                raise ValueError(f"{p}:{lineno}: each JSON line needs a string 'text' or strings 'mr' and 'ref'")
    else:
        raise ValueError(f"dataset file {str(p)!r} must end in .txt or .jsonl, got suffix {suffix!r}")
    if not out:
        raise ValueError(f"dataset file {str(p)!r} contains no examples")
    return out


def load_task(dataset: str, num_train: int, num_val: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation) examples of ``dataset`` ("e2e-synthetic" or a local file path).

    Files are shuffled with ``seed``; the first ``num_val`` examples (at most a fifth of the file, at least
    one) are the validation set and up to ``num_train`` of the rest are the training set.
    """
    if dataset == "e2e-synthetic":
        everything = generate_e2e(num_train + num_val, seed)
        return everything[:num_train], everything[num_train:]
    examples = load_examples(dataset)
    if len(examples) < 2:
        raise ValueError(f"dataset file {dataset!r} has {len(examples)} example(s); need >= 2 (train + validation)")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xF11E])).permutation(len(examples))
    examples = [examples[i] for i in order]
    n_val = max(1, min(num_val, len(examples) // 5))
    return examples[n_val:n_val + num_train], examples[:n_val]


# ---- partition --------------------------------------------------------------------------------
def partition(labels: Sequence[str], num_clients: int, scheme: str, alpha: float, min_size: int,
              seed: int) -> list[np.ndarray]:
    """Split example indices across clients.

    Args:
        labels: One category per example (used by ``"dirichlet"``).
        num_clients: K.
        scheme: ``"iid"`` (random equal shares) or ``"dirichlet"`` (per label, client shares drawn from
            Dir(alpha * 1_K)).
        alpha: Dirichlet concentration (small = very non-IID).
        min_size: Every client ends with at least this many examples (the largest shard gives examples
            to deficient ones, deterministically).
        seed: Seed of the partition.

    Returns:
        K sorted index arrays that together cover every example exactly once.
    """
    n = len(labels)
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if n < num_clients * min_size:
        raise ValueError(f"{n} training examples cannot give {num_clients} clients >= {min_size} examples each "
                         f"(one mini-batch); use more training samples")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDA7A]))
    if scheme == "iid":
        perm = rng.permutation(n)
        shards = [list(s) for s in np.array_split(perm, num_clients)]
    elif scheme == "dirichlet":
        if alpha <= 0:
            raise ValueError(f"dirichlet alpha must be > 0, got {alpha}")
        shards = [[] for _ in range(num_clients)]
        labels_arr = np.asarray(labels, dtype=object)
        for lab in sorted(set(labels)):
            idx = rng.permutation(np.nonzero(labels_arr == lab)[0])
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, part in enumerate(np.split(idx, cuts)):
                shards[k].extend(part.tolist())
        for k in range(num_clients):  # repair: move examples from the largest shard
            while len(shards[k]) < min_size:
                donor = int(np.argmax([len(s) for s in shards]))
                shards[k].append(shards[donor].pop())
    else:
        raise ValueError(f"partition must be 'iid' or 'dirichlet', got {scheme!r}")
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]


# ---- encoding and batching -----------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedSet:
    """Fixed-length token sequences.

    Attributes:
        input_ids: (N, seq_len) int64, right-padded with the pad id.
        labels: (N, seq_len) int64, the input ids with -100 on padding and on prompt tokens.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode_examples(examples: Sequence[Example], tokenizer, seq_len: int) -> EncodedSet:
    """Tokenise ``text + eos`` to exactly ``seq_len`` tokens (truncate / right-pad); mask prompt and pad labels."""
    if not examples:
        raise ValueError("cannot encode an empty list of examples")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos token")
    ids = torch.full((len(examples), seq_len), pad, dtype=torch.long)
    labels = torch.full((len(examples), seq_len), -100, dtype=torch.long)
    texts = tokenizer([e.text for e in examples], add_special_tokens=False)["input_ids"]
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    for i, (tok, pr) in enumerate(zip(texts, prompts)):
        tok = (list(tok) + [eos])[:seq_len]
        ids[i, :len(tok)] = torch.tensor(tok, dtype=torch.long)
        labels[i, :len(tok)] = ids[i, :len(tok)]
        labels[i, :min(len(pr), len(tok))] = -100
    return EncodedSet(ids, labels)


class ClientSampler:
    """Endless mini-batches from one client's shard: a fresh seeded permutation per pass (epoch)."""

    def __init__(self, data: EncodedSet, indices: np.ndarray, batch_size: int, seed: int) -> None:
        if len(indices) < batch_size:
            raise ValueError(f"client shard has {len(indices)} examples, fewer than one batch of {batch_size}")
        self.data = data
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels), each (batch_size, seq_len); a batch never straddles two passes."""
        if self._pos + self.batch_size > len(self._order):
            self._order = self.indices[torch.randperm(len(self.indices), generator=self.generator)]
            self._pos = 0
        rows = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.data.input_ids[rows], self.data.labels[rows]
