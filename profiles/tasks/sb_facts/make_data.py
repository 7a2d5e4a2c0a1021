"""Generate sb_facts's test.jsonl and train.jsonl: four-choice general-knowledge questions in English.

The facts are written out below; wrong choices for the table-driven questions are drawn from the same table.
Deterministic (fixed seed): rerunning it rewrites byte-identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 1729
TRAIN_SIZE = 12

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "the United Kingdom": "London", "Ireland": "Dublin", "the Netherlands": "Amsterdam",
    "Belgium": "Brussels", "Austria": "Vienna", "Switzerland": "Bern", "Greece": "Athens",
    "Poland": "Warsaw", "Sweden": "Stockholm",
    "Norway": "Oslo", "Denmark": "Copenhagen", "Finland": "Helsinki", "Russia": "Moscow", "Ukraine": "Kyiv",
    "Hungary": "Budapest", "the Czech Republic": "Prague", "Turkey": "Ankara", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Nigeria": "Abuja", "Ghana": "Accra", "Morocco": "Rabat", "Ethiopia": "Addis Ababa",
    "Japan": "Tokyo", "China": "Beijing", "South Korea": "Seoul", "India": "New Delhi", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "Indonesia": "Jakarta", "the Philippines": "Manila", "Malaysia": "Kuala Lumpur",
    "Pakistan": "Islamabad", "Iran": "Tehran", "Iraq": "Baghdad", "Saudi Arabia": "Riyadh",
    "Australia": "Canberra", "New Zealand": "Wellington", "Canada": "Ottawa",
    "the United States": "Washington, D.C.", "Mexico": "Mexico City", "Brazil": "Brasília",
    "Argentina": "Buenos Aires", "Chile": "Santiago", "Peru": "Lima", "Colombia": "Bogotá", "Cuba": "Havana",
}

CONTINENTS = {
    "Kenya": "Africa", "Nigeria": "Africa", "Ghana": "Africa", "Ethiopia": "Africa", "Morocco": "Africa",
    "Brazil": "South America", "Argentina": "South America", "Peru": "South America",
    "Chile": "South America",
    "Colombia": "South America", "Japan": "Asia", "India": "Asia", "Thailand": "Asia", "Vietnam": "Asia",
    "China": "Asia", "France": "Europe", "Sweden": "Europe", "Poland": "Europe", "Italy": "Europe",
    "Portugal": "Europe", "Canada": "North America", "Mexico": "North America",
    "the United States": "North America", "Australia": "Oceania", "New Zealand": "Oceania",
}

LANGUAGES = {
    "Brazil": "Portuguese", "Mexico": "Spanish", "Argentina": "Spanish", "France": "French",
    "Germany": "German", "Japan": "Japanese", "China": "Chinese", "Italy": "Italian", "Russia": "Russian",
    "Portugal": "Portuguese", "the Netherlands": "Dutch", "Sweden": "Swedish", "Greece": "Greek",
    "Turkey": "Turkish", "Poland": "Polish", "South Korea": "Korean", "Egypt": "Arabic", "Thailand": "Thai",
    "Vietnam": "Vietnamese", "Finland": "Finnish", "Iran": "Persian", "Hungary": "Hungarian",
    "Australia": "English",
}

SYMBOLS = {
    "hydrogen": "H", "helium": "He", "carbon": "C", "nitrogen": "N", "oxygen": "O", "sodium": "Na",
    "magnesium": "Mg", "aluminium": "Al", "silicon": "Si", "phosphorus": "P", "sulfur": "S", "chlorine": "Cl",
    "potassium": "K", "calcium": "Ca", "iron": "Fe", "copper": "Cu", "zinc": "Zn", "silver": "Ag",
    "gold": "Au", "mercury": "Hg", "lead": "Pb", "tin": "Sn", "uranium": "U", "neon": "Ne", "nickel": "Ni",
}

YOUNG = {
    "cat": "a kitten", "dog": "a puppy", "cow": "a calf", "horse": "a foal", "sheep": "a lamb",
    "goat": "a kid", "pig": "a piglet", "duck": "a duckling", "goose": "a gosling", "frog": "a tadpole",
    "kangaroo": "a joey", "bear": "a cub", "deer": "a fawn", "swan": "a cygnet", "owl": "an owlet",
    "chicken": "a chick", "eagle": "an eaglet", "butterfly": "a caterpillar",
}

OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "happy": "sad", "open": "closed",
    "early": "late", "full": "empty", "rich": "poor", "young": "old", "wet": "dry", "strong": "weak",
    "loud": "quiet", "hard": "soft", "high": "low", "long": "short", "thick": "thin", "heavy": "light",
    "day": "night", "win": "lose", "buy": "sell", "push": "pull", "first": "last", "inside": "outside",
    "remember": "forget",
}

# (question, right answer, three wrong answers)
HANDWRITTEN = [
    ("Which planet is known as the Red Planet?", "Mars", ["Venus", "Jupiter", "Saturn"]),
    ("What is the largest planet in our solar system?", "Jupiter", ["Earth", "Mars", "Mercury"]),
    ("Which planet is closest to the Sun?", "Mercury", ["Venus", "Earth", "Neptune"]),
    ("What do bees make?", "honey", ["milk", "silk", "wool"]),
    ("Which gas do plants take in from the air to make food?", "carbon dioxide",
     ["oxygen", "helium", "neon"]),
    ("Which gas do humans need to breathe to stay alive?", "oxygen",
     ["carbon dioxide", "helium", "hydrogen"]),
    ("At what temperature in degrees Celsius does water freeze?", "0", ["10", "50", "100"]),
    ("At what temperature in degrees Celsius does water boil at sea level?", "100", ["0", "50", "200"]),
    ("What is the freezing point of water in degrees Fahrenheit?", "32", ["0", "100", "212"]),
    ("What is the largest ocean on Earth?", "the Pacific Ocean",
     ["the Atlantic Ocean", "the Indian Ocean", "the Arctic Ocean"]),
    ("What is the tallest mountain in the world?", "Mount Everest",
     ["Mont Blanc", "Mount Fuji", "Mount Kilimanjaro"]),
    ("What is the longest river in South America?", "the Amazon", ["the Nile", "the Thames", "the Danube"]),
    ("What is the largest hot desert in the world?", "the Sahara",
     ["the Gobi", "the Mojave", "the Kalahari"]),
    ("What is the largest mammal?", "the blue whale", ["the elephant", "the giraffe", "the horse"]),
    ("What color is the sky on a clear day?", "blue", ["green", "red", "black"]),
    ("What color are ripe bananas?", "yellow", ["blue", "purple", "black"]),
    ("What do you call frozen water?", "ice", ["steam", "sand", "glass"]),
    ("Which organ pumps blood through the body?", "the heart", ["the lungs", "the stomach", "the liver"]),
    ("Which organs do humans use to breathe?", "the lungs", ["the kidneys", "the stomach", "the bones"]),
    ("What is the largest organ of the human body?", "the skin", ["the liver", "the heart", "the brain"]),
    ("How many bones are in the adult human body?", "206", ["106", "306", "150"]),
    ("Which blood cells carry oxygen?", "red blood cells", ["white blood cells", "platelets", "nerve cells"]),
    ("How many legs does a spider have?", "8", ["6", "4", "10"]),
    ("How many legs does an insect have?", "6", ["8", "4", "2"]),
    ("What is the star at the center of our solar system?", "the Sun", ["Polaris", "Sirius", "the Moon"]),
    ("What does a thermometer measure?", "temperature", ["weight", "time", "distance"]),
    ("Which instrument is used to find north?", "a compass", ["a ruler", "a scale", "a clock"]),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare",
     ["Charles Dickens", "Mark Twain", "Jane Austen"]),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci",
     ["Pablo Picasso", "Vincent van Gogh", "Claude Monet"]),
    ("Who developed the theory of relativity?", "Albert Einstein",
     ["Isaac Newton", "Charles Darwin", "Galileo Galilei"]),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong",
     ["Yuri Gagarin", "Christopher Columbus", "Marco Polo"]),
    ("What is the hardest natural substance?", "diamond", ["gold", "iron", "glass"]),
    ("What is the main ingredient of guacamole?", "avocado", ["tomato", "potato", "banana"]),
    ("What is the currency of Japan?", "the yen", ["the euro", "the dollar", "the peso"]),
    ("What is the currency of the United Kingdom?", "the pound", ["the euro", "the yen", "the rupee"]),
    ("What is the currency of India?", "the rupee", ["the yen", "the euro", "the peso"]),
    ("In which country do kangaroos live in the wild?", "Australia", ["Canada", "Brazil", "Norway"]),
    ("What is H2O commonly called?", "water", ["salt", "sugar", "oil"]),
    ("Which force pulls objects toward the Earth?", "gravity", ["magnetism", "friction", "wind"]),
    ("What shape has three sides?", "a triangle", ["a square", "a circle", "a hexagon"]),
    ("How many sides does a hexagon have?", "6", ["5", "7", "8"]),
    ("What is the square root of 81?", "9", ["8", "7", "18"]),
    ("Which is the smallest prime number?", "2", ["1", "3", "0"]),
    ("How many minutes are in an hour?", "60", ["100", "30", "24"]),
    ("How many hours are in a day?", "24", ["12", "60", "48"]),
    ("How many days are in a week?", "7", ["5", "10", "12"]),
    ("How many months are in a year?", "12", ["10", "6", "14"]),
    ("How many weeks are in a year?", "52", ["48", "50", "56"]),
    ("How many days are in a leap year?", "366", ["365", "364", "360"]),
    ("How many days does February have in a year that is not a leap year?", "28", ["30", "31", "29"]),
    ("How many continents are there?", "7", ["5", "9", "12"]),
    ("How many players does a soccer team have on the field?", "11", ["9", "7", "15"]),
    ("How many strings does a standard guitar have?", "6", ["4", "8", "12"]),
    ("What does a tadpole grow into?", "a frog", ["a fish", "a snake", "a bird"]),
    ("What do giant pandas mainly eat?", "bamboo", ["fish", "meat", "insects"]),
    ("Which vitamin does the skin make in sunlight?", "vitamin D", ["vitamin C", "vitamin A", "vitamin B12"]),
    ("Which part of a plant makes food using sunlight?", "the leaves",
     ["the roots", "the seeds", "the bark"]),
    ("What is the process plants use to make food from sunlight?", "photosynthesis",
     ["digestion", "evaporation", "erosion"]),
    ("In which country are the pyramids of Giza?", "Egypt", ["Mexico", "Peru", "Greece"]),
    ("In which city is the Eiffel Tower?", "Paris", ["London", "Rome", "Berlin"]),
    ("In which city is the Colosseum?", "Rome", ["Athens", "Paris", "Madrid"]),
    ("In which country is the Great Wall?", "China", ["Japan", "India", "Egypt"]),
    ("Which meal is eaten in the morning?", "breakfast", ["dinner", "supper", "lunch"]),
    ("What do you call a doctor who treats animals?", "a veterinarian", ["a dentist", "a lawyer", "a pilot"]),
    ("What do you call a person who flies an airplane?", "a pilot", ["a sailor", "a farmer", "a chef"]),
    ("Which tool is used to cut paper?", "scissors", ["a hammer", "a spoon", "a brush"]),
    ("What is the meat from a pig called?", "pork", ["beef", "mutton", "venison"]),
    ("What is the meat from a cow called?", "beef", ["pork", "mutton", "venison"]),
    ("In which direction does the Sun rise?", "the east", ["the west", "the north", "the south"]),
    ("Which metal is liquid at room temperature?", "mercury", ["iron", "gold", "copper"]),
    ("Which gas makes up most of Earth's atmosphere?", "nitrogen", ["oxygen", "carbon dioxide", "hydrogen"]),
    ("What is the center of an atom called?", "the nucleus", ["the electron", "the shell", "the membrane"]),
    ("What is the basic unit of life?", "the cell", ["the atom", "the organ", "the bone"]),
    ("What are animals that eat only plants called?", "herbivores", ["carnivores", "omnivores", "predators"]),
    ("What is the largest continent?", "Asia", ["Africa", "Europe", "South America"]),
    ("Which month comes after January?", "February", ["March", "December", "June"]),
    ("Which month comes after March?", "April", ["May", "February", "October"]),
    ("What is the first letter of the English alphabet?", "A", ["B", "Z", "E"]),
    ("What do you use to see very small things such as cells?", "a microscope",
     ["a telescope", "a thermometer", "a stethoscope"]),
    ("What do you use to look at distant stars?", "a telescope",
     ["a microscope", "a barometer", "a stethoscope"]),
]


def _record(
    rng: random.Random, category: str, question: str, answer: str, wrong: list[str]
) -> dict[str, object]:
    choices = [answer, *wrong]
    rng.shuffle(choices)
    return {"category": category, "question": question, "choices": choices, "answer": choices.index(answer)}


def _from_table(
    rng: random.Random, category: str, table: dict[str, str], template: str
) -> list[dict[str, object]]:
    pool = sorted(set(table.values()))
    records = []
    for key, answer in table.items():
        wrong = rng.sample([value for value in pool if value != answer], 3)
        records.append(_record(rng, category, template.format(key), answer, wrong))
    return records


def build() -> dict[str, list[dict[str, object]]]:
    """All questions, shuffled, the first TRAIN_SIZE as the few-shot split."""
    rng = random.Random(SEED)
    records = [
        *_from_table(rng, "capital", CAPITALS, "What is the capital of {}?"),
        *_from_table(rng, "continent", CONTINENTS, "On which continent is {}?"),
        *_from_table(rng, "language", LANGUAGES, "What is the main language spoken in {}?"),
        *_from_table(rng, "chemistry", SYMBOLS, "What is the chemical symbol for {}?"),
        *_from_table(rng, "animals", YOUNG, "What is a young {} called?"),
        *_from_table(rng, "opposites", OPPOSITES, "What is the opposite of '{}'?"),
        *(_record(rng, "general", question, answer, wrong) for question, answer, wrong in HANDWRITTEN),
    ]
    questions = [record["question"] for record in records]
    assert len(questions) == len(set(questions)), "duplicate question"
    rng.shuffle(records)
    splits = {"train": records[:TRAIN_SIZE], "test": records[TRAIN_SIZE:]}
    for split, items in splits.items():
        for index, record in enumerate(items):
            record["id"] = f"{split}-{index:03d}"
    return splits


def render(records: list[dict[str, object]]) -> str:
    """One JSON object per line, `id` first, Hangul and accents kept readable."""
    lines = []
    for record in records:
        ordered = {"id": record["id"], **{k: v for k, v in record.items() if k != "id"}}
        lines.append(json.dumps(ordered, ensure_ascii=False) + "\n")
    return "".join(lines)


def main() -> None:
    """Write the splits next to this script."""
    for split, records in build().items():
        (HERE / f"{split}.jsonl").write_text(render(records), encoding="utf-8")


if __name__ == "__main__":
    main()
