"""Generate sb_ko's test.jsonl and train.jsonl: four-choice questions in Korean (Hangul).

The facts are written out below; wrong choices for the table-driven questions are drawn from the same table.
Deterministic (fixed seed): rerunning it rewrites byte-identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 1443
TRAIN_SIZE = 12

CAPITALS = {
    "프랑스": "파리", "독일": "베를린", "이탈리아": "로마", "스페인": "마드리드", "영국": "런던",
    "일본": "도쿄", "중국": "베이징", "미국": "워싱턴 D.C.", "캐나다": "오타와",
    "호주": "캔버라", "러시아": "모스크바", "이집트": "카이로", "태국": "방콕",
    "베트남": "하노이", "인도": "뉴델리", "그리스": "아테네", "포르투갈": "리스본",
    "네덜란드": "암스테르담", "오스트리아": "빈", "스웨덴": "스톡홀름", "노르웨이": "오슬로",
    "덴마크": "코펜하겐", "핀란드": "헬싱키", "폴란드": "바르샤바", "튀르키예": "앙카라",
    "멕시코": "멕시코시티", "브라질": "브라질리아", "아르헨티나": "부에노스아이레스", "페루": "리마",
    "케냐": "나이로비", "인도네시아": "자카르타", "필리핀": "마닐라", "대한민국": "서울",
}

OPPOSITES = {
    "크다": "작다", "덥다": "춥다", "높다": "낮다", "길다": "짧다", "많다": "적다", "빠르다": "느리다",
    "밝다": "어둡다", "무겁다": "가볍다", "넓다": "좁다", "두껍다": "얇다", "깊다": "얕다", "쉽다": "어렵다",
    "기쁘다": "슬프다", "가깝다": "멀다", "열다": "닫다", "사다": "팔다", "이기다": "지다", "웃다": "울다",
    "입다": "벗다", "켜다": "끄다", "위": "아래", "앞": "뒤", "왼쪽": "오른쪽", "낮": "밤", "시작": "끝",
    "부자": "가난한 사람", "입구": "출구", "여름": "겨울",
}

SOUNDS = {
    "고양이": "야옹", "개": "멍멍", "소": "음매", "돼지": "꿀꿀", "오리": "꽥꽥", "닭": "꼬끼오",
    "개구리": "개굴개굴", "양": "매애", "병아리": "삐약삐약", "참새": "짹짹",
}

# Fruit and vegetables are never asked against each other:
# some Korean school books count 수박 or 딸기 as 채소.
CATEGORIES = {
    "과일": ["사과", "바나나", "포도", "복숭아", "귤"],
    "채소": ["당근", "오이", "양파", "배추"],
    "동물": ["호랑이", "토끼", "코끼리", "사자"],
    "탈것": ["자동차", "기차", "비행기", "자전거"],
    "악기": ["피아노", "기타", "바이올린", "피리"],
    "가구": ["의자", "책상", "침대", "옷장"],
}
CONFUSABLE = {frozenset({"과일", "채소"})}

DAYS = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]

# (question, right answer, three wrong answers)
HANDWRITTEN = [
    ("한글을 만든 왕은 누구입니까?", "세종대왕", ["이순신", "광개토대왕", "장영실"]),
    ("거북선으로 유명한 조선의 장군은 누구입니까?", "이순신", ["세종대왕", "을지문덕", "김유신"]),
    ("김치를 담글 때 가장 많이 쓰는 채소는 무엇입니까?", "배추", ["사과", "바나나", "포도"]),
    ("설날에 먹는 전통 음식은 무엇입니까?", "떡국", ["송편", "팥죽", "삼계탕"]),
    ("추석에 빚어 먹는 떡은 무엇입니까?", "송편", ["떡국", "팥죽", "냉면"]),
    ("동지에 먹는 음식은 무엇입니까?", "팥죽", ["송편", "떡국", "냉면"]),
    ("한국의 전통 옷은 무엇입니까?", "한복", ["기모노", "사리", "치파오"]),
    ("한국의 전통 집은 무엇이라고 부릅니까?", "한옥", ["이글루", "게르", "피라미드"]),
    ("대한민국에서 가장 높은 산은 무엇입니까?", "한라산", ["설악산", "지리산", "북한산"]),
    ("대한민국에서 가장 큰 섬은 어디입니까?", "제주도", ["울릉도", "강화도", "거제도"]),
    ("태극기의 바탕색은 무엇입니까?", "흰색", ["검은색", "빨간색", "노란색"]),
    ("대한민국의 나라꽃은 무엇입니까?", "무궁화", ["장미", "벚꽃", "해바라기"]),
    ("물이 어는 온도는 섭씨 몇 도입니까?", "0도", ["10도", "50도", "100도"]),
    ("물이 끓는 온도는 섭씨 몇 도입니까?", "100도", ["0도", "50도", "200도"]),
    ("태양계에서 가장 큰 행성은 무엇입니까?", "목성", ["지구", "화성", "수성"]),
    ("붉은 행성이라고 불리는 행성은 무엇입니까?", "화성", ["금성", "목성", "토성"]),
    ("지구에서 가장 넓은 바다는 무엇입니까?", "태평양", ["대서양", "인도양", "북극해"]),
    ("세계에서 가장 높은 산은 무엇입니까?", "에베레스트산", ["한라산", "후지산", "백두산"]),
    ("꿀을 만드는 곤충은 무엇입니까?", "꿀벌", ["개미", "나비", "모기"]),
    ("거미의 다리는 몇 개입니까?", "8개", ["6개", "4개", "10개"]),
    ("곤충의 다리는 몇 개입니까?", "6개", ["8개", "4개", "2개"]),
    ("식물이 햇빛을 받아 양분을 만드는 과정은 무엇입니까?", "광합성", ["소화", "증발", "침식"]),
    ("사람이 숨을 쉴 때 꼭 필요한 기체는 무엇입니까?", "산소", ["이산화탄소", "헬륨", "수소"]),
    ("우리 몸에서 피를 온몸으로 보내는 기관은 무엇입니까?", "심장", ["폐", "위", "간"]),
    ("해가 뜨는 방향은 어느 쪽입니까?", "동쪽", ["서쪽", "남쪽", "북쪽"]),
    ("일주일은 며칠입니까?", "7일", ["5일", "10일", "30일"]),
    ("1년은 몇 달입니까?", "12달", ["10달", "6달", "24달"]),
    ("하루는 몇 시간입니까?", "24시간", ["12시간", "10시간", "60시간"]),
    ("1시간은 몇 분입니까?", "60분", ["100분", "30분", "24분"]),
    ("1분은 몇 초입니까?", "60초", ["100초", "10초", "30초"]),
    ("한 해의 첫 번째 달은 몇 월입니까?", "1월", ["12월", "3월", "6월"]),
    ("한글의 기본 자음은 몇 개입니까?", "14개", ["10개", "24개", "26개"]),
    ("한글의 기본 모음은 몇 개입니까?", "10개", ["14개", "6개", "21개"]),
    ("삼각형의 변은 몇 개입니까?", "3개", ["4개", "5개", "6개"]),
    ("사각형의 꼭짓점은 몇 개입니까?", "4개", ["3개", "5개", "8개"]),
    ("얼음이 녹으면 무엇이 됩니까?", "물", ["불", "흙", "돌"]),
    ("비가 온 뒤 하늘에 뜨는 일곱 빛깔의 띠는 무엇입니까?", "무지개", ["구름", "번개", "안개"]),
    ("아픈 사람을 치료하는 사람은 누구입니까?", "의사", ["요리사", "소방관", "우체부"]),
    ("불을 끄는 일을 하는 사람은 누구입니까?", "소방관", ["의사", "요리사", "가수"]),
    ("편지를 배달하는 사람은 누구입니까?", "우체부", ["소방관", "의사", "화가"]),
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


def _topic(word: str) -> str:
    """Attach the topic particle: 은 after a final consonant (batchim), 는 after a vowel."""
    has_batchim = (ord(word[-1]) - 0xAC00) % 28 != 0
    return word + ("은" if has_batchim else "는")


def _categories(rng: random.Random) -> list[dict[str, object]]:
    records = []
    names = sorted(CATEGORIES)
    for name in names:
        others = [other for other in names if other != name and frozenset({name, other}) not in CONFUSABLE]
        for answer in CATEGORIES[name][:3]:
            wrong = [rng.choice(CATEGORIES[other]) for other in rng.sample(others, 3)]
            records.append(_record(rng, "분류", f"다음 중 {_topic(name)} 무엇입니까?", answer, wrong))
    return records


def _sums(rng: random.Random) -> list[dict[str, object]]:
    records = []
    seen: set[str] = set()
    while len(records) < 20:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        plus = len(records) % 2 == 0
        if not plus and a < b:
            a, b = b, a
        question = f"{a} {'더하기' if plus else '빼기'} {b}의 값은 얼마입니까?"
        if question in seen:
            continue
        seen.add(question)
        answer = a + b if plus else a - b
        wrong = rng.sample([n for n in range(max(0, answer - 5), answer + 6) if n != answer], 3)
        records.append(_record(rng, "계산", question, str(answer), [str(n) for n in wrong]))
    return records


def _next_day(rng: random.Random) -> list[dict[str, object]]:
    records = []
    for index, day in enumerate(DAYS):
        answer = DAYS[(index + 1) % 7]
        wrong = rng.sample([other for other in DAYS if other not in (day, answer)], 3)
        records.append(_record(rng, "요일", f"{day} 다음 날은 무슨 요일입니까?", answer, wrong))
    return records


def build() -> dict[str, list[dict[str, object]]]:
    """All questions, shuffled, the first TRAIN_SIZE as the few-shot split."""
    rng = random.Random(SEED)
    records = [
        *_from_table(rng, "수도", CAPITALS, "{}의 수도는 어디입니까?"),
        *_from_table(rng, "반대말", OPPOSITES, "'{}'의 반대말은 무엇입니까?"),
        *_from_table(rng, "동물 소리", SOUNDS, "{}의 울음소리를 흉내 낸 말은 무엇입니까?"),
        *_categories(rng),
        *_sums(rng),
        *_next_day(rng),
        *(_record(rng, "상식", question, answer, wrong) for question, answer, wrong in HANDWRITTEN),
    ]
    # Category questions share their wording, so a question is identified together with its choices.
    keys = [(record["question"], frozenset(record["choices"])) for record in records]  # type: ignore[arg-type]
    assert len(keys) == len(set(keys)), "duplicate question"
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
