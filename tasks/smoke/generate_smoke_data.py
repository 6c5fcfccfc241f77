"""Regenerate the smoke suite's JSONL files deterministically: `python tasks/smoke/generate_smoke_data.py`.

Three tiny multiple-choice tasks (4 choices each, 40 items each) used by tests and the smoke run:
simple arithmetic, word antonyms and country capitals. Distractors are chosen with a fixed seed, so
the committed files are reproduced byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_CHOICES = 4

ANTONYMS = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("light", "dark"),
    ("happy", "sad"),
    ("open", "closed"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft"),
    ("high", "low"),
    ("long", "short"),
    ("old", "new"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("thick", "thin"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("clean", "dirty"),
    ("near", "far"),
    ("first", "last"),
    ("true", "false"),
    ("win", "lose"),
    ("buy", "sell"),
    ("push", "pull"),
    ("give", "take"),
    ("left", "right"),
    ("inside", "outside"),
    ("above", "below"),
    ("begin", "end"),
    ("day", "night"),
    ("alive", "dead"),
    ("safe", "dangerous"),
    ("sweet", "sour"),
    ("heavy", "light"),
    ("wide", "narrow"),
    ("deep", "shallow"),
    ("cheap", "expensive"),
    ("friend", "enemy"),
    ("accept", "refuse"),
]

CAPITALS = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("Russia", "Moscow"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Chile", "Santiago"),
    ("Canada", "Ottawa"),
    ("Mexico", "Mexico City"),
    ("Greece", "Athens"),
    ("Austria", "Vienna"),
    ("Poland", "Warsaw"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Ireland", "Dublin"),
    ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"),
    ("Hungary", "Budapest"),
    ("Turkey", "Ankara"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("India", "New Delhi"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"),
    ("Australia", "Canberra"),
    ("Argentina", "Buenos Aires"),
    ("Colombia", "Bogota"),
    ("Cuba", "Havana"),
    ("Morocco", "Rabat"),
    ("Nigeria", "Abuja"),
    ("Ethiopia", "Addis Ababa"),
    ("South Korea", "Seoul"),
]


def _item(rng: random.Random, item_id: str, question: str, answer: str, pool: list[str]) -> dict:
    distractors = rng.sample(sorted(set(pool) - {answer}), N_CHOICES - 1)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return {"id": item_id, "question": question, "choices": choices, "label": choices.index(answer)}


def arithmetic_items(rng: random.Random, n: int = 40) -> list[dict]:
    items = []
    for index in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = "+" if index % 2 == 0 else "-"
        answer = a + b if op == "+" else a - b
        offsets = rng.sample([-3, -2, -1, 1, 2, 3, 10], N_CHOICES - 1)
        pool = [str(answer + offset) for offset in offsets]
        items.append(
            _item(rng, f"arith-{index:03d}", f"What is {a} {op} {b}?", str(answer), pool + [str(answer)])
        )
    return items


def antonym_items(rng: random.Random) -> list[dict]:
    pool = [opposite for _, opposite in ANTONYMS]
    return [
        _item(rng, f"antonym-{index:03d}", f"What is the opposite of '{word}'?", opposite, pool)
        for index, (word, opposite) in enumerate(ANTONYMS)
    ]


def capital_items(rng: random.Random) -> list[dict]:
    pool = [capital for _, capital in CAPITALS]
    return [
        _item(rng, f"capital-{index:03d}", f"What is the capital of {country}?", capital, pool)
        for index, (country, capital) in enumerate(CAPITALS)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    write_jsonl(HERE / "smoke_arithmetic.jsonl", arithmetic_items(random.Random(1)))
    write_jsonl(HERE / "smoke_antonyms.jsonl", antonym_items(random.Random(2)))
    write_jsonl(HERE / "smoke_capitals.jsonl", capital_items(random.Random(3)))


if __name__ == "__main__":
    main()
