"""Regenerate the demo datasets shipped under datasets/ (deterministic; run once, commit).

digits: scikit-learn's bundled handwritten digits (no download), split into dated partitions.
intents: a small hand-written intent set, expanded from templates.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "datasets"
DATES = ["2026-01-05", "2026-01-12", "2026-01-19"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = ROOT / "digits"
    write_csv(out / "labels.csv", ["id", "name"], [[i, str(i)] for i in range(10)])
    rows = [
        [f"d{i:05d}", int(label), *[int(v) for v in image]]
        for i, (image, label) in enumerate(zip(digits.data, digits.target, strict=True))
    ]
    header = ["id", "label", *[f"p{i}" for i in range(64)]]
    bounds = [0, 600, 1200, len(rows)]
    for day, lo, hi in zip(DATES, bounds, bounds[1:], strict=False):
        write_csv(out / f"dt={day}" / "examples.csv", header, rows[lo:hi])


INTENTS = {
    "book_flight": ["book a flight to {city}", "I need a plane ticket to {city} {when}",
                    "find me flights to {city}", "can you get me on a flight to {city} {when}",
                    "reserve a seat on the next plane to {city}"],
    "check_weather": ["what's the weather in {city} {when}", "will it rain in {city} {when}",
                      "how hot is it in {city}", "weather forecast for {city} {when}",
                      "do I need an umbrella in {city} {when}"],
    "play_music": ["play some {genre}", "put on {genre} music", "I want to hear {genre}",
                   "start a {genre} playlist", "play my {genre} mix"],
    "set_alarm": ["set an alarm for {time}", "wake me up at {time}", "alarm at {time} please",
                  "remind me at {time} to get up", "set a wake-up call for {time}"],
    "order_food": ["order a {food} for delivery", "I want to order {food}", "get me some {food}",
                   "can I get {food} delivered {when}", "order {food} from the usual place"],
    "cancel": ["cancel that", "never mind, cancel it", "stop the last request",
               "please cancel my {thing}", "forget about the {thing}"],
}
FILLERS = {
    "city": ["paris", "tokyo", "berlin", "lima", "oslo", "cairo", "denver", "seoul"],
    "when": ["today", "tomorrow", "on friday", "next week", "tonight"],
    "genre": ["jazz", "rock", "classical", "hip hop", "lofi", "folk"],
    "time": ["6 am", "7:30", "noon", "5 pm", "quarter past eight"],
    "food": ["pizza", "sushi", "ramen", "tacos", "a burger", "pad thai"],
    "thing": ["order", "alarm", "booking", "reservation", "playlist"],
}


def make_intents() -> None:
    rng = random.Random(7)
    out = ROOT / "intents"
    names = sorted(INTENTS)
    write_csv(out / "labels.csv", ["id", "name"], [[i, n] for i, n in enumerate(names)])
    seen: set[str] = set()
    rows = []
    for label, name in enumerate(names):
        made = 0
        attempts = 0
        while made < 45 and attempts < 2000:
            attempts += 1
            template = rng.choice(INTENTS[name])
            text = template.format(**{k: rng.choice(v) for k, v in FILLERS.items()})
            if text in seen:
                continue
            seen.add(text)
            rows.append([text, label])
            made += 1
    rng.shuffle(rows)
    rows = [[f"i{i:04d}", text, label] for i, (text, label) in enumerate(rows)]
    third = len(rows) // 3
    bounds = [0, third, 2 * third, len(rows)]
    for day, lo, hi in zip(DATES, bounds, bounds[1:], strict=False):
        write_csv(out / f"dt={day}" / "examples.csv", ["id", "text", "label"], rows[lo:hi])


if __name__ == "__main__":
    make_digits()
    make_intents()
    print(f"wrote demo datasets under {ROOT}")
