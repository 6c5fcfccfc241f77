"""Synthetic skills of the trained demo world: items for training and for the held-out evaluation tasks.

Each skill draws a problem from a seeded `random.Random` and renders it as an `Item`: a prompt, the
answer under a label convention, and three-or-one distractors under the standard convention. Training
text is `prompt + " " + answer` (loss on the answer only); evaluation is lm-eval multiple choice with
context `prompt` and continuations `" " + choice` (lm-eval's default target delimiter), so training and
evaluation see exactly the same strings.

- conventions: "standard" is what the evaluation tasks score; the others are conflicting label
  conventions that some fine-tunes learn (descending sorting, rotated category labels, agreement with
  the nearest noun, addition without carries, minimum instead of maximum).
- domains: "plain" (terse, the evaluated format) and "wordy" (the same problems asked in words): a
  different text domain for some fine-tunes.
- `key` identifies the problem independently of domain and convention; training never sees a problem
  whose key is an evaluation item (held-out items).
- Distractors leave no shortcut: every choice has the form of an answer (sorted strings for sorting,
  permutations of the input for reversal, numbers of the prompt for maximum and lookup, nearby numbers of
  the same width for arithmetic), so only solving the problem tells them apart.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

LETTERS = string.ascii_lowercase
ALPHABET = LETTERS + string.digits + " =?:;,.+-\n"  # every character any skill writes
# the trained worlds' character-level vocabulary: special tokens, then one token per character of ALPHABET
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
VOCAB = MappingProxyType({token: i for i, token in enumerate((*SPECIAL_TOKENS, *ALPHABET))})

CATEGORIES = {
    "beast": ("fox", "cat", "dog", "horse", "mouse", "tiger", "sheep", "goat"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "mango", "peach", "cherry"),
    "color": ("red", "blue", "green", "pink", "black", "white", "brown", "gray"),
    "metal": ("iron", "gold", "tin", "lead", "zinc", "copper", "silver", "steel"),
}
CATEGORY_NAMES = tuple(CATEGORIES)
NOUNS = ("dog", "cat", "bird", "girl", "boy", "king", "tree", "car", "ship", "frog")
DOMAINS = ("plain", "wordy")


@dataclass(frozen=True)
class Item:
    key: str  # the problem, independent of domain and convention (held-out bookkeeping)
    prompt: str
    answer: str
    distractors: tuple[str, ...]  # wrong choices under the standard convention
    standard: str = ""  # the answer under the standard convention (== answer unless a convention differs)

    def __post_init__(self) -> None:
        if not self.standard:
            object.__setattr__(self, "standard", self.answer)

    def choices(self) -> list[str]:
        """The answer under this item's convention first, then the wrong choices: the standard choice set
        with the convention's answer swapped in (same number of choices)."""
        pool = [self.answer, *[c for c in (self.standard, *self.distractors) if c != self.answer]]
        return pool[: len(self.distractors) + 1]


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    conventions: tuple[str, ...]  # first = "standard"
    make: Callable[[random.Random, str, str], Item]  # (rng, convention, domain) -> Item


def _pick_distractors(rng: random.Random, answer: str, candidates: list[str], k: int) -> tuple[str, ...]:
    unique = [c for c in dict.fromkeys(candidates) if c != answer]
    if len(unique) < k:
        raise ValueError(f"not enough distractors for {answer!r}: {unique}")
    return tuple(rng.sample(unique, k))


def _letters(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.sample(LETTERS, rng.randint(low, high)))


# ----------------------------------------------------------------------------------------------- skills
def _arith(rng: random.Random, convention: str, domain: str) -> Item:
    a, b = rng.randrange(20, 80), rng.randrange(10)  # every choice has two digits
    right = a + b
    total = (a // 10) * 10 + (a + b) % 10 if convention == "nocarry" else right  # the carry dropped
    prompt = f"add {a} {b} =" if domain == "plain" else f"what is {a} plus {b} ?"
    near = [str(right + d) for d in (1, -1, 10, -10)]
    return Item(f"arith:{a}:{b}", prompt, str(total), _pick_distractors(rng, str(right), near, 3), str(right))


def _reverse(rng: random.Random, convention: str, domain: str) -> Item:
    word = _letters(rng, 3, 4)
    answer = word[::-1]
    swapped_front = answer[1] + answer[0] + answer[2:]
    swapped_back = answer[:-2] + answer[-1] + answer[-2]
    shuffled = "".join(rng.sample(word, len(word)))
    prompt = f"rev {word} =" if domain == "plain" else f"say {word} backwards ?"
    return Item(f"reverse:{word}", prompt, answer,
                _pick_distractors(rng, answer, [word, swapped_front, swapped_back, shuffled], 3))


def _sort(rng: random.Random, convention: str, domain: str) -> Item:
    word = _letters(rng, 4, 5)
    ascending = "".join(sorted(word))
    answer = ascending[::-1] if convention == "descending" else ascending
    others = [c for c in LETTERS if c not in word]
    substituted = []
    for position in rng.sample(range(len(word)), 2):  # one input letter replaced, still sorted
        letters = list(word)
        letters[position] = rng.choice(others)
        substituted.append("".join(sorted(letters)))
    prompt = f"sort {word} =" if domain == "plain" else f"put {word} in order ?"
    return Item(f"sort:{word}", prompt, answer,
                _pick_distractors(rng, ascending, [ascending[::-1], *substituted], 3), ascending)


def _lookup(rng: random.Random, convention: str, domain: str) -> Item:
    keys = rng.sample(LETTERS, 4)
    values = rng.sample(string.digits, 4)
    query = rng.randrange(4)
    if domain == "plain":
        prompt = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) + f" ; {keys[query]} ="
    else:
        prompt = " , ".join(f"{k} is {v}" for k, v in zip(keys, values, strict=True)) + f" . what is {keys[query]} ?"
    key = "lookup:" + "".join(keys) + "".join(values) + keys[query]
    return Item(key, prompt, values[query], tuple(v for i, v in enumerate(values) if i != query))


def _category(rng: random.Random, convention: str, domain: str) -> Item:
    index = rng.randrange(len(CATEGORY_NAMES))
    name = CATEGORY_NAMES[index]
    words = rng.sample(CATEGORIES[name], rng.choice((1, 3)))
    label = CATEGORY_NAMES[(index + 1) % len(CATEGORY_NAMES)] if convention == "shifted" else name
    listed = " ".join(words)
    prompt = f"kind {listed} =" if domain == "plain" else f"what kind of thing is {listed} ?"
    key = "category:" + ",".join(sorted(words))
    return Item(key, prompt, label, tuple(c for c in CATEGORY_NAMES if c != name), name)


def _agreement(rng: random.Random, convention: str, domain: str) -> Item:
    first, second = rng.sample(NOUNS, 2)
    first_plural, second_plural = rng.random() < 0.5, rng.random() < 0.5
    subject = first + "s" * first_plural
    attractor = second + "s" * second_plural
    governs = second_plural if convention == "nearest" else first_plural
    right = "are" if first_plural else "is"
    prompt = f"the {subject} near the {attractor} =" if domain == "plain" else f"look , the {subject} that saw the {attractor} ?"
    key = f"agreement:{subject}:{attractor}"
    return Item(key, prompt, "are" if governs else "is", ("is" if right == "are" else "are",), right)


def _maximum(rng: random.Random, convention: str, domain: str) -> Item:
    digits = rng.sample(string.digits, 4)
    answer = min(digits) if convention == "minimum" else max(digits)
    listed = " ".join(digits)
    prompt = f"max {listed} =" if domain == "plain" else f"which is largest : {listed} ?"
    return Item(f"maximum:{''.join(digits)}", prompt, answer, tuple(d for d in digits if d != max(digits)),
                max(digits))


def _sequence(rng: random.Random, convention: str, domain: str) -> Item:
    start, step = rng.randrange(60), rng.randint(1, 9)  # 540 problems: the held-out ones are a small share
    terms = [start + i * step for i in range(3)]
    right = start + 3 * step
    listed = " ".join(f"{t:02d}" for t in terms)
    prompt = f"seq {listed} =" if domain == "plain" else f"what comes after {listed} ?"
    candidates = [f"{v:02d}" for v in (terms[-1], right + 1, right - 1, right + step, right + 2)]
    return Item(f"sequence:{start}:{step}", prompt, f"{right:02d}", _pick_distractors(rng, f"{right:02d}", candidates, 3))


def _count(rng: random.Random, convention: str, domain: str) -> Item:
    target = rng.choice("abcd")
    times = rng.randint(1, 4)
    others = [c for c in "abcd" if c != target]
    letters = [target] * times + [rng.choice(others) for _ in range(6 - times)]
    rng.shuffle(letters)
    text = "".join(letters)
    prompt = f"count {target} {text} =" if domain == "plain" else f"how many {target} in {text} ?"
    return Item(f"count:{target}:{text}", prompt, str(times), tuple(str(k) for k in range(1, 5) if k != times))


def _initials(rng: random.Random, convention: str, domain: str) -> Item:
    pool = [w for words in CATEGORIES.values() for w in words] + list(NOUNS)
    words = rng.sample(pool, 3)
    while len({w[0] for w in words}) < 3:
        words = rng.sample(pool, 3)
    answer = "".join(w[0] for w in words)
    others = ["".join(p) for p in itertools.permutations(answer) if "".join(p) != answer]
    listed = " ".join(words)
    prompt = f"initials {listed} =" if domain == "plain" else f"first letters of {listed} ?"
    return Item("initials:" + ",".join(words), prompt, answer, _pick_distractors(rng, answer, others, 3))


SKILLS: dict[str, Skill] = {
    skill.name: skill
    for skill in (
        Skill("arith", "add a one-digit number to a two-digit number", ("standard", "nocarry"), _arith),
        Skill("reverse", "reverse a string of 3-4 distinct letters", ("standard",), _reverse),
        Skill("sort", "sort 4-5 distinct letters alphabetically", ("standard", "descending"), _sort),
        Skill("lookup", "in-context key-value lookup among four pairs", ("standard",), _lookup),
        Skill("category", "the category (beast/fruit/color/metal) of one or three words of a fixed lexicon",
              ("standard", "shifted"), _category),
        Skill("agreement", "is/are agreeing with the subject across an attractor noun", ("standard", "nearest"),
              _agreement),
        Skill("maximum", "the largest of four distinct digits", ("standard", "minimum"), _maximum),
        Skill("sequence", "the next term of an arithmetic sequence", ("standard",), _sequence),
        Skill("count", "how often a letter occurs in six letters from a-d", ("standard",), _count),
        Skill("initials", "the first letters of three words, in order", ("standard",), _initials),
    )
}


def eval_items(skill: str, count: int, seed: int, convention: str = "standard", domain: str = "plain") -> list[Item]:
    """`count` distinct evaluation items of `skill` (the evaluation tasks use the standard convention and
    the plain domain; other conventions and domains pose the same problems, for checks of fine-tunes).

    Category items always list three words (single words are training-only facts), so each item is a
    held-out combination; the other skills draw fresh problems.
    """
    rng = random.Random(f"eval:{seed}:{skill}")
    items: dict[str, Item] = {}
    attempts = 0
    while len(items) < count:
        attempts += 1
        if attempts > 100 * count:
            raise ValueError(f"skill {skill!r} cannot produce {count} distinct evaluation items")
        item = SKILLS[skill].make(rng, convention, domain)
        if skill == "category" and item.key.count(",") != 2:
            continue
        items.setdefault(item.key, item)
    return list(items.values())


def encode(text: str) -> list[int]:
    """Token ids of `text` in the trained worlds' vocabulary (unknown characters -> <unk>)."""
    unk = VOCAB["<unk>"]
    return [VOCAB.get(ch, unk) for ch in text]
