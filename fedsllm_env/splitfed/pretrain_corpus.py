"""Pre-training corpus of the locally built tiny GPT-2: what a small real LM would have read before it meets the
fine-tuning task.

Half of the documents are prose: descriptive sentences about towns, places, food and people, and sentences
from a small random grammar (subjects, verbs, objects, relative clauses, prepositional phrases over the
same entities) that make the text high-entropy, like general English, rather than a few fixed templates.
The other half are data-to-text records of five *other* domains (weather forecasts, train journeys, books,
hotels, sights) in the task's ``key[value] | key[value] => sentence`` format. The restaurant domain of the
fine-tuning task (``fedsllm_env.splitfed.data.generate_e2e``) never appears as a record, so its keys
(``eatType``, ``priceRange``, ``customer rating``, ``familyFriendly``), its phrasing and the positions it copies
names to are what LoRA fine-tuning has to learn; the format itself is not alien. Everything is drawn
from explicit ``numpy.random.Generator`` objects (no global RNG).
"""

from __future__ import annotations

import numpy as np

from fedsllm_env.splitfed.data import AREAS, FOODS, NAMES, NEARS, PEOPLE, PRICES, RATINGS, SEPARATOR, TOWNS

__all__ = ["CORPUS_VERSION", "generate_pretrain_documents", "record_text"]

CORPUS_VERSION = 2
"""Bump when the documents change (part of the tiny-model cache key)."""

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
SKIES = ("sunny", "cloudy", "overcast", "foggy", "clear", "grey", "bright")
WINDS = ("calm", "light", "moderate", "strong", "gusty")
RAINS = ("none", "light showers", "heavy rain", "drizzle", "thunderstorms", "snow")
GENRES = ("mystery", "history", "poetry", "science", "travel", "cookery", "fantasy", "biography")
AUTHORS = ("Alice Hartley", "Tom Baker", "Priya Shah", "Liam Osei", "Mei Lin", "Oscar Reyes", "Hannah Weiss",
           "Samuel Okafor", "Julia Novak", "Ravi Menon")
TITLES = ("The Silent River", "Winter Roads", "A Kitchen Year", "Stars Over Ely", "The Last Lighthouse",
          "Notes from York", "Paper Lanterns", "The Glass Orchard", "Bridges and Towers", "Salt and Smoke")
HOTELS = ("Crowne Plaza Hotel", "Express by Holiday Inn", "The Grand", "Riverside Lodge", "Park Inn",
          "The Old Rectory", "Station Hotel", "Kings Arms Hotel")
SIGHTS = ("museum", "gallery", "castle", "park", "cathedral", "theatre", "library", "zoo")
ADJS = ("quiet", "busy", "lovely", "small", "friendly", "popular", "nice", "old", "modern", "cheap", "expensive",
        "good", "famous", "pleasant", "charming", "crowded", "historic", "cosy")
VENUES = ("pub", "coffee shop", "restaurant", "bakery", "market", "hotel")

PROSE = (
    "{town} is a {adj} town with many {venue}s .",
    "{person} went to {name} in {town} for some {food} food .",
    "The {area} of {town} is a {adj} place to walk in the evening .",
    "{name} is near {near} and it is a {adj} {venue} .",
    "Many people in {town} like {food} food because it is {adj} .",
    "Prices at {name} are {price} and the food is {adj} .",
    "{person} said that {name} was {adj} and {adj2} .",
    "You can find {food} food in the {area} of {town} .",
    "The old {venue} by the river in {town} is {adj} .",
    "Families with children often visit {name} on {day} .",
    "Customers gave {name} a rating of {rating} last year .",
    "If you are hungry in {town} , try {name} near {near} .",
    "In {month} {person} visited {town} and stayed near {near} .",
    "{person} is reading {title} by {author} .",
    "The weather in {town} was {sky} on {day} , so {person} stayed at {name} .",
    "{person} took the train to {town} and had {food} food at a {adj} {venue} .",
    "There is a new {venue} called {name} in the {area} of {town} .",
    "The customers of {name} say it is {adj} , but the prices are not low .",
    "{person} does not like {name} because it is not {adj} .",
    "Located close to {near} , the {venue} is also {adj} .",
    "Children are not allowed in the {venue} after nine , but families are welcome at lunch .",
    "{name} serves {food} food and offers a {adj} menu for kids .",
    "A meal at {name} will cost you more than you think , said {person} .",
    "The {venue} has an average rating of {rating} from its customers .",
    "{person} rated the {venue} {rating} and said the service was {adj} .",
    "It is a {adj} {venue} where you can eat {food} food with friends .",
    "Most restaurants in {town} are in the {price} price range .",
    "{person} is a friend of the family and works at a {venue} in {town} .",
    "The {venue} near {near} is family friendly and has a garden for children .",
)
G_SUBJ = ("the man", "a woman", "my neighbour", "the old teacher", "a young doctor", "the children", "our guide",
          "the manager", "a visitor", "the waiter", "his sister", "the farmer", "everyone", "nobody", "the team")
G_VERB = ("likes", "found", "wanted", "visited", "opened", "closed", "painted", "cleaned", "sold", "bought",
          "described", "recommended", "remembered", "called", "built", "watched", "reviewed", "enjoyed")
G_OBJ = ("a small house", "the new shop", "a quiet room", "the garden", "an old book", "the bridge", "a long letter",
         "the menu", "a cheap ticket", "the river bank", "a good meal", "the city wall", "a warm coat", "the market")
G_ADV = ("today", "yesterday", "last week", "every morning", "in the summer", "at night", "again", "quickly",
         "slowly", "together", "after lunch", "before dinner", "near the station", "by the river")
G_REL = ("that has a blue door", "where people meet", "which is very old", "that serves tea", "where prices are low",
         "that is close to the park", "which opened last year", "that has a high rating", "where children play",
         "which is also cheap", "that is not far away", "where meals cost little")
G_CONJ = ("and", "but", "because", "so", "although", "while")
G_PP = ("in the riverside", "in the city centre", "at the weekend", "with a friend", "for the family", "in {town}",
        "near {near}", "at {name}", "by the old market", "in a {adj} street", "with high prices", "for less than £20",
        "with {food} food", "on {day}", "in {month}")

GRAMMAR_SHARE = 0.7
"""Share of the prose sentences drawn from the random grammar (the rest from the PROSE templates)."""
DOMAIN_SHARES = (0.5, 0.1, 0.1, 0.1, 0.1, 0.1)
"""Document kinds: prose, weather, train, book, hotel, sight records."""


def _c(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


def _food(rng: np.random.Generator) -> str:
    food = _c(rng, FOODS)
    return food if rng.random() < 0.5 else food.lower()


def _fill(rng: np.random.Generator, template: str) -> str:
    return template.format(
        town=_c(rng, TOWNS), adj=_c(rng, ADJS), adj2=_c(rng, ADJS), venue=_c(rng, VENUES), person=_c(rng, PEOPLE),
        name=_c(rng, NAMES), food=_food(rng), area=_c(rng, AREAS), near=_c(rng, NEARS), price=_c(rng, PRICES),
        rating=_c(rng, RATINGS), day=_c(rng, DAYS), month=_c(rng, MONTHS), title=_c(rng, TITLES),
        author=_c(rng, AUTHORS), sky=_c(rng, SKIES))


def _grammar_sentence(rng: np.random.Generator) -> str:
    def clause() -> str:
        subj = _c(rng, G_SUBJ + PEOPLE + NAMES) if rng.random() < 0.8 else \
            f"a {_c(rng, ADJS)} {_c(rng, ('pub', 'restaurant', 'coffee shop', 'hotel', 'shop'))}"
        obj = _c(rng, G_OBJ) if rng.random() < 0.7 else \
            f"a {_c(rng, ADJS)} {_c(rng, ('place', 'venue', 'room', 'meal', 'street', 'town'))}"
        out = f"{subj} {_c(rng, G_VERB)} {obj}"
        for _ in range(int(rng.integers(0, 3))):
            out += " " + _fill(rng, _c(rng, G_PP))
        if rng.random() < 0.4:
            out += " " + _c(rng, G_REL)
        if rng.random() < 0.5:
            out += " " + _c(rng, G_ADV)
        return out

    s = clause()
    if rng.random() < 0.4:
        s += f" {_c(rng, G_CONJ)} {clause()}"
    return s[0].upper() + s[1:] + " ."


def _prose(rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 4))
    return " ".join(_grammar_sentence(rng) if rng.random() < GRAMMAR_SHARE else _fill(rng, _c(rng, PROSE))
                    for _ in range(n))


def _weather(rng: np.random.Generator) -> tuple[dict[str, str], str]:
    city, day, sky, wind, rain = _c(rng, TOWNS), _c(rng, DAYS), _c(rng, SKIES), _c(rng, WINDS), _c(rng, RAINS)
    t = int(rng.integers(-5, 31))
    rec = {"city": city, "day": day, "sky": sky, "temperature": f"{t} degrees", "wind": wind}
    s = _c(rng, (f"On {day} {city} will be {sky}", f"{city} can expect a {sky} {day}",
                 f"The forecast for {city} on {day} is {sky}"))
    s += " " + _c(rng, (f"with a high of {t} degrees", f"and temperatures near {t} degrees",
                        f"with {t} degrees in the afternoon")) + " ."
    s += " " + _c(rng, (f"The wind will be {wind} .", f"Expect {wind} wind .", f"Winds are {wind} ."))
    if rng.random() < 0.5:
        rec["rain"] = rain
        s += " " + ("No rain is expected ." if rain == "none" else
                    _c(rng, (f"There may be {rain} .", f"Look out for {rain} later .")))
    return rec, s


def _train(rng: np.random.Generator) -> tuple[dict[str, str], str]:
    i, j = rng.choice(len(TOWNS), size=2, replace=False)
    a, b = TOWNS[int(i)], TOWNS[int(j)]
    dep = f"{int(rng.integers(5, 23))}:{_c(rng, ('00', '15', '30', '45'))}"
    dur, fare = int(rng.integers(1, 6)), int(rng.integers(5, 90))
    rec = {"from": a, "to": b, "departs": dep, "duration": f"{dur} hours", "fare": f"£{fare}"}
    s = _c(rng, (f"The train from {a} to {b} leaves at {dep}", f"A train leaves {a} for {b} at {dep}",
                 f"At {dep} there is a train from {a} to {b}"))
    s += " " + _c(rng, (f"and takes {dur} hours .", f"and the journey takes {dur} hours ."))
    s += " " + _c(rng, (f"A ticket costs £{fare} .", f"The fare is £{fare} .", f"Tickets are £{fare} ."))
    if rng.random() < 0.6:
        changes = int(rng.integers(0, 3))
        rec["changes"] = str(changes)
        s += " " + ("It is a direct train .", "You change trains once .", "You change trains twice .")[changes]
    return rec, s


def _book(rng: np.random.Generator) -> tuple[dict[str, str], str]:
    title, author, genre = _c(rng, TITLES), _c(rng, AUTHORS), _c(rng, GENRES)
    year = int(rng.integers(1950, 2024))
    rec = {"title": title, "author": author, "genre": genre, "year": str(year)}
    s = _c(rng, (f"{title} is a {genre} book by {author}", f"{author} wrote {title} , a {genre} book ,",
                 f"Written by {author} , {title} is a {genre} book"))
    s += " " + _c(rng, (f"published in {year} .", f"from {year} .", f"that came out in {year} ."))
    if rng.random() < 0.5:
        rating = _c(rng, RATINGS)
        rec["rating"] = rating
        s += " " + _c(rng, (f"Readers rate it {rating} .", f"It has a {rating} rating ."))
    return rec, s


def _hotel(rng: np.random.Generator) -> tuple[dict[str, str], str]:
    name, area, near = _c(rng, HOTELS), _c(rng, AREAS), _c(rng, NEARS)
    stars = int(rng.integers(1, 6))
    rec = {"name": name, "stars": str(stars), "area": area}
    parts = [_c(rng, (f"{name} is a {stars} star hotel in the {area}",
                      f"In the {area} you will find {name} , a {stars} star hotel",
                      f"{name} , a {stars} star hotel , is in the {area}"))]
    if rng.random() < 0.6:
        rec["near"] = near
        parts.append(_c(rng, (f"near {near}", f"not far from {near}")))
    if rng.random() < 0.6:
        price = _c(rng, ("cheap", "moderate", "high"))
        rec["price"] = price
        parts.append(_c(rng, (f"with {price} prices", f"and rooms are {price}")))
    s = " ".join(parts) + " ."
    if rng.random() < 0.4:
        parking = _c(rng, ("yes", "no"))
        rec["parking"] = parking
        s += " " + ("Parking is available ." if parking == "yes" else "There is no parking .")
    return rec, s


def _sight(rng: np.random.Generator) -> tuple[dict[str, str], str]:
    kind, town, area = _c(rng, SIGHTS), _c(rng, TOWNS), _c(rng, AREAS)
    name = f"{town} {kind.capitalize()}"
    entry = _c(rng, ("free", "£5", "£10", "£12"))
    rec = {"name": name, "type": kind, "area": area, "entry": entry}
    s = _c(rng, (f"{name} is a {kind} in the {area} of {town}", f"The {kind} in the {area} is called {name}"))
    if rng.random() < 0.5:
        rec["opens"] = f"{int(rng.integers(8, 12))}:00"
        s += f" and opens at {rec['opens']}"
    s += " . " + ("Entry is free ." if entry == "free" else
                  _c(rng, (f"Entry costs {entry} .", f"A ticket is {entry} .")))
    return rec, s


_RECORDS = (_weather, _train, _book, _hotel, _sight)


def record_text(record: dict[str, str], sentence: str) -> str:
    """``key[value] | key[value] => sentence``: the data-to-text format shared with the task."""
    return " | ".join(f"{k}[{v}]" for k, v in record.items()) + f" {SEPARATOR} {sentence}"


def generate_pretrain_documents(num_docs: int, seed: int) -> list[str]:
    """``num_docs`` pre-training documents (prose or records of other domains), deterministic in ``seed``."""
    if num_docs < 0:
        raise ValueError(f"num_docs must be >= 0, got {num_docs}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E8]))
    kinds = rng.choice(len(DOMAIN_SHARES), size=num_docs, p=list(DOMAIN_SHARES))
    return [_prose(rng) if k == 0 else record_text(*_RECORDS[k - 1](rng)) for k in kinds.tolist()]
