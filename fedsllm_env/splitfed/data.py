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

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fedsllm_env.errors import DataError, MissingFileError, TokenizerError

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


_FIELD_PAIRS = (("mr", "ref"), ("meaning_representation", "human_reference"))
"""(meaning representation, reference) field names: the official E2E release and the Hugging Face dataset."""


def _read_text(p: Path) -> str:
    """The file as text (UTF-8, an optional BOM ignored); one clear error for other encodings."""
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"dataset file {str(p)!r} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                         f"{e.start}); convert it, e.g. `iconv -f latin1 -t utf-8 {p.name} > {p.stem}.utf8{p.suffix}`"
                         ) from None


def _example_from_record(rec: dict, where: str) -> Example:
    """An example from a JSON object or CSV row: ``text``, or a (meaning representation, reference) pair."""
    keys = {str(k).strip().lower(): v for k, v in rec.items() if k is not None}
    if isinstance(keys.get("text"), str) and keys["text"].strip():
        return _example_from_text(keys["text"])
    for mr, ref in _FIELD_PAIRS:
        if isinstance(keys.get(mr), str) and isinstance(keys.get(ref), str):
            if not keys[mr].strip() or not keys[ref].strip():
                raise DataError(f"{where}: empty {mr!r} or {ref!r}")
            return _example_from_text(f"{keys[mr]} {SEPARATOR} {keys[ref]}")
    pairs = " or ".join(f"{a!r} and {b!r}" for a, b in _FIELD_PAIRS)
    raise DataError(f"{where}: each record needs a string 'text' or strings {pairs}; found fields {sorted(keys)}")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` of the JSONL reader: a key given twice is an error, not "the last one wins"."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise DataError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _csv_records(text: str, p: Path) -> list[tuple[dict[str, str], int]]:
    """(record, line) of every non-blank CSV row under the header; DataError naming the file and line for a
    repeated column name, a row with more or fewer fields than the header, or a broken / unterminated quote."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[tuple[dict[str, str], int]] = []
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1  # the physical line this record starts on
        try:
            fields = next(reader)
        except StopIteration:
            return out
        except csv.Error as e:
            hint = ("a quote opened in this record is never closed, so the field runs to the end of the file; "
                    "close the quote" if "unexpected end of data" in str(e)
                    else "quote a field that holds commas or quotes, doubling the quotes inside it")
            raise DataError(f"{p}:{start}: malformed CSV ({e}): {hint}") from None
        if header is None:
            header = fields
            names = [h.strip().lower() for h in header]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise DataError(f"{p}:{start}: the CSV header {header} repeats the column(s) {repeated} (names are "
                                "matched case-insensitively); give each column a distinct name")
            continue
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            more = len(fields) > len(header)
            raise DataError(f"{p}:{start}: the row has {len(fields)} field(s) but the header {header} has "
                            f"{len(header)}; " + ("quote fields that contain commas" if more else
                                                  "fill in the missing fields"))
        out.append((dict(zip(header, fields)), start))


def load_examples(path: str | Path) -> list[Example]:
    """Read examples from a local ``.txt``, ``.jsonl`` or ``.csv`` file (UTF-8).

    * ``.txt``: one example per non-empty line (``"MR => reference"`` lines get a prompt);
    * ``.jsonl``: one object per line with ``"text"``, or ``"mr"`` and ``"ref"`` (the official E2E names), or
      ``"meaning_representation"`` and ``"human_reference"`` (the Hugging Face ``e2e_nlg`` names);
    * ``.csv`` (header row; names matched case-insensitively): the same fields as ``.jsonl``, e.g. the
      official E2E ``trainset.csv`` (``mr,ref``).

    Meaning-representation pairs become ``"mr => ref"`` with the loss on the reference only.

    Raises:
        MissingFileError: The file does not exist (a FileNotFoundError).
        DataError: Unknown extension, not UTF-8, malformed line / row (a repeated CSV column, a row with more or
            fewer fields than the header, an unterminated quote, a JSON key given twice), or no examples in the
            file; the message names the file and the line (a ValueError).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"dataset file {str(p)!r} does not exist (expected 'e2e-synthetic' or a local "
                               ".txt / .jsonl / .csv path)")
    suffix = p.suffix.lower()
    if suffix not in (".txt", ".jsonl", ".csv"):
        raise DataError(f"dataset file {str(p)!r} must end in .txt, .jsonl or .csv, got suffix {suffix!r}")
    text = _read_text(p)
    out: list[Example] = []
    if suffix == ".txt":
        out = [_example_from_text(line) for line in text.splitlines() if line.strip()]
    elif suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{lineno}: not valid JSON ({e})") from e
            except DataError as e:
                raise DataError(f"{p}:{lineno}: {e}; keep one") from None
            if not isinstance(obj, dict):
                raise DataError(f"{p}:{lineno}: each JSON line must be an object, got {type(obj).__name__}")
            out.append(_example_from_record(obj, f"{p}:{lineno}"))
    else:
        out = [_example_from_record(rec, f"{p}:{line}") for rec, line in _csv_records(text, p)]
    if not out:
        raise DataError(f"dataset file {str(p)!r} contains no examples")
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
        raise DataError(f"dataset file {dataset!r} has {len(examples)} example(s); need >= 2 (train + validation)")
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
        raise DataError(f"{n} training examples cannot give {num_clients} clients >= {min_size} examples each "
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
        kept: (N,) indices of the encoded examples in the list given to :func:`encode_examples`.
        truncated: Kept examples cut at seq_len (their end-of-sequence token is lost, the rest trains).
        dropped_prompt: Examples dropped because their prompt alone fills seq_len (nothing left to predict).
        dropped_empty: Examples dropped because they have no token to predict (empty text).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truncated: int = 0
    dropped_prompt: int = 0
    dropped_empty: int = 0

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def report(self, name: str, seq_len: int) -> str:
        """A one-line account of truncated and dropped examples ("" if none)."""
        parts = []
        if self.truncated:
            parts.append(f"{self.truncated} truncated at seq_len={seq_len}")
        if self.dropped_prompt:
            parts.append(f"{self.dropped_prompt} dropped: the prompt alone fills seq_len={seq_len}")
        if self.dropped_empty:
            parts.append(f"{self.dropped_empty} dropped: no token to predict")
        return f"{name} examples: " + "; ".join(parts) + f" ({len(self)} kept)" if parts else ""


def encode_examples(examples: Sequence[Example], tokenizer, seq_len: int) -> EncodedSet:
    """Tokenise ``[bos] text eos`` to exactly ``seq_len`` tokens (truncate / right-pad); mask prompt and pad labels.

    A bos token is prepended only when the tokenizer has one distinct from eos (LLaMA-style). Examples whose
    prompt fills ``seq_len``, or that leave nothing to predict, are dropped and counted; truncated examples
    are kept and counted.

    Raises:
        DataError: no examples, or every example dropped (a ValueError).
        TokenizerError: a tokenizer without eos (a ValueError).
    """
    if not examples:
        raise DataError("cannot encode an empty list of examples")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TokenizerError(f"tokenizer {type(tokenizer).__name__} has no eos token; set tokenizer.eos_token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = getattr(tokenizer, "bos_token_id", None)
    head = [bos] if bos is not None and bos != eos else []
    texts = tokenizer([e.text for e in examples], add_special_tokens=False)["input_ids"]
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    rows: list[tuple[list[int], int]] = []
    kept: list[int] = []
    truncated = dropped_prompt = dropped_empty = 0
    for i, (tok, pr) in enumerate(zip(texts, prompts)):
        full = head + list(tok) + [eos]
        n_prompt = len(head) + len(pr) if pr else 0
        if n_prompt >= seq_len:
            dropped_prompt += 1
            continue
        if len(full[:seq_len]) - max(n_prompt, 1) < 1:  # labels[0] is never predicted
            dropped_empty += 1
            continue
        truncated += len(full) > seq_len
        rows.append((full[:seq_len], n_prompt))
        kept.append(i)
    if not rows:
        raise DataError(f"all {len(examples)} examples were dropped: {dropped_prompt} have a prompt that fills "
                         f"seq_len={seq_len}, {dropped_empty} have no token to predict; raise training.seq_len")
    ids = torch.full((len(rows), seq_len), pad, dtype=torch.long)
    labels = torch.full((len(rows), seq_len), -100, dtype=torch.long)
    for i, (tok, n_prompt) in enumerate(rows):
        ids[i, :len(tok)] = torch.tensor(tok, dtype=torch.long)
        labels[i, n_prompt:len(tok)] = ids[i, n_prompt:len(tok)]
    return EncodedSet(ids, labels, np.asarray(kept, dtype=np.int64), truncated, dropped_prompt, dropped_empty)


class ClientSampler:
    """Endless mini-batches from one client's shard: a fresh seeded permutation per pass (epoch)."""

    def __init__(self, data: EncodedSet, indices: np.ndarray, batch_size: int, seed: int) -> None:
        if len(indices) < batch_size:
            raise DataError(f"client shard has {len(indices)} examples, fewer than one batch of {batch_size}; lower "
                            "training.batch_size or raise training.num_train_samples")
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
