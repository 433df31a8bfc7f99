"""A synthetic news corpus that no pre-trained model can already know, with probes.

Every person, organisation, town, river, prize and product is invented from syllables, so
probe accuracy before an update sits at chance and any gain is knowledge the update put in.

How the documents are written matters for DiSC: the teacher knows more than the student only
through a sentence's prefix, so a fact stated once in the first sentence teaches nothing. As in
real news, each document introduces its facts and then refers back to them in later sentences
("Varo Tenkel, the founder of Blissem Labs, ..." ... "Tenkel said Blissem Labs had ..."), and
those later sentences are where the prediction of a fact changes.

Probes are four-option multiple-choice questions worded differently from the document. Their
distractors are values of the same kind (other towns for a town, nearby numbers for a number),
taken from other documents of the corpus where possible, so that picking a name merely because
the update made it familiar does not score.

``check_corpus`` verifies the promises the corpus makes (uniqueness of names, no contradictory
facts, every answer supported by its document and every distractor absent from it, questions
that are not copies of document sentences); the tests run it on generated corpora.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

SAMPLE_SEED = 7
SAMPLE_DOCUMENTS = 6
SAMPLE_PATH = Path(__file__).parent / "data" / "sample_update.json"

MIN_SENTENCES, MAX_SENTENCES = 5, 10

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s",
           "st", "t", "tr", "v", "z", "th", "sh", "j", "w", "sk", "gl"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei"]
# Inner syllables stay open or nearly so, which keeps names short and pronounceable.
_INNER_CODAS = ["", "", "", "n", "r", "l", "s"]
_FINAL_CODAS = ["", "n", "r", "l", "s", "m", "k", "nd", "rk", "lt", "v", "st", "rn", "x"]
_TOWN_SUFFIXES = ["vik", "holm", "stad", "ford", "mere", "feld", "wick", "dal", "ton", "burg"]
_COMPANY_TYPES = ["Labs", "Industries", "Works", "Systems", "Cooperative", "Instruments"]
_PRODUCT_NOUNS = ["heat pumps", "water filters", "bicycle frames", "wind sensors", "glass tiles",
                  "ceramic valves", "solar roofs", "ferry engines", "farm drones", "cargo bikes"]
_PRIZE_FIELDS = [("Architecture", "library"), ("Poetry", "collection"),
                 ("Documentary Film", "film"), ("Photography", "series"), ("Fiction", "novel")]
_WORK_TITLES = {"library": "the {W} Library", "collection": "Songs of {W}",
                "film": "{W} Crossing", "series": "Winter in {W}", "novel": "The {W} Letters"}
_WORK_DESCRIPTIONS = {"library": "the design of", "collection": "the collection", "film": "the film",
                      "series": "the photo series", "novel": "the novel"}
_STRUCTURES = [("Bridge", "bridge", "over"), ("Tunnel", "tunnel", "under"),
               ("Viaduct", "viaduct", "over")]
_MASCOTS = ["Rovers", "Falcons", "Mariners", "Foxes", "Wanderers", "Harriers", "Otters"]
_VENUES = ["Park", "Arena", "Stadium", "Ground"]
_FIELDS_OF_STUDY = ["Soil Science", "Marine Studies", "Mountain Ecology", "Natural History",
                    "Wetland Research"]
_ANIMALS = ["beetle", "moth", "snail", "frog", "spider", "lizard"]
_REGIONS = ["Hills", "Marshes", "Valley", "Uplands", "Forest"]
_PLANTS = ["moss", "sedge", "fern", "thistle", "reed"]
_PROJECTS = ["the {W} tram line", "a new harbour at {W}", "the {W} swimming hall",
             "a ring road around {W}", "the {W} concert hall"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]


class _Namer:
    """Invents words from syllables; no word is handed out twice in one corpus."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int = 2, suffix: str = "") -> str:
        for _ in range(10_000):
            core = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
                           + self.rng.choice(_FINAL_CODAS if i == syllables - 1 else _INNER_CODAS)
                           for i in range(syllables))
            word = (core + suffix).capitalize()
            stem = core.capitalize()
            # The stem is reserved too, so that "Dravik" never coexists with "Dravikstad".
            if 4 <= len(core) <= 9 and word not in self.used and stem not in self.used:
                self.used.update({word, stem})
                return word
        raise RuntimeError("ran out of invented names; use fewer documents")

    def person(self) -> str:
        return f"{self.word(2)} {self.word(self.rng.choice([2, 3]))}"

    def town(self) -> str:
        return self.word(2, self.rng.choice(_TOWN_SUFFIXES))


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.choice([2025, 2026])}"


def _surname(person: str) -> str:
    return person.split(" ", 1)[1]


# ---------------------------------------------------------------------------------------------
# Stories. Each returns the values of its placeholders, its facts (key -> subject, relation,
# object, kind of value), its sentences as slots and its questions. A slot is
# (variants, facts it needs already introduced, facts it introduces); the lede comes first,
# the other slots follow in a random order that respects those needs.
# ---------------------------------------------------------------------------------------------

def _company(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    person = namer.person()
    company = f"{namer.word(2)} {rng.choice(_COMPANY_TYPES)}"
    v = {"P": person, "S": _surname(person), "C": company, "T1": namer.town(), "T2": namer.town(),
         "X": f"{namer.word(2)} {rng.choice(_PRODUCT_NOUNS)}", "Y": str(rng.randint(1961, 2018)),
         "N": str(rng.randrange(60, 900, 10)), "date": _date(rng), "month": rng.choice(_MONTHS)}
    facts = {
        "founder": (company, "founder", person, "person"),
        "hq": (company, "headquarters", v["T1"], "town"),
        "site": (company, "new site", v["T2"], "town"),
        "jobs": (company, "new jobs", v["N"], "jobs"),
        "founded": (company, "founded in", v["Y"], "year"),
        "product": (company, "product", v["X"], "product"),
    }
    lede = (["{P}, the founder of {C}, said on {date} that the company would open a new plant in {T2}.",
             "{C} will open a new plant in {T2}, its founder {P} announced on {date}.",
             "On {date}, {C} founder {P} announced plans for a factory in {T2}."],
            {"founder", "site"})
    slots = [
        (["The company was founded in {Y} and has its headquarters in {T1}.",
          "Based in {T1}, {C} has been in business since {Y}.",
          "{C} has been headquartered in {T1} since it was set up in {Y}."], set(), {"hq", "founded"}),
        (["It is best known for its {X}.", "The firm makes {X}, which it sells across the region.",
          "{C}'s main products are {X}."], set(), {"product"}),
        (["The new plant in {T2} is expected to create {N} jobs.",
          "According to the company, the {T2} site will employ {N} people.",
          "Around {N} people will work at the {T2} site once it is running."], set(), {"jobs"}),
        (["Asked about the timing, {S} said {C} had outgrown its old premises.",
          "At {C}, {S} has long argued for building closer to customers.",
          "{S}, who started {C} from a small workshop, called the move overdue."], {"founder"}, set()),
        (["Work at the {T1} headquarters of {C} will continue unchanged.",
          "{C} will keep its head office in {T1}, the company said.",
          "Staff in {T1}, where {C} is headquartered, were told of the plan the same morning."],
         {"hq"}, set()),
        (["Officials in {T2} welcomed the {N} new jobs.",
          "{S} said the {N} positions in {T2} would be filled over two years."], {"jobs"}, set()),
        (["The {T2} plant will mainly produce {X}.",
          "Demand for the {X} made by {C} has doubled in three years, according to {S}."],
         {"product"}, set()),
        (["Since {Y}, {C} has grown from a handful of staff to several hundred.",
          "{S} founded {C} in {Y} after leaving university."], {"founded"}, set()),
    ]
    fillers = ["Shares in regional suppliers rose after the announcement.",
               "Construction is due to begin in {month}.",
               "The company did not disclose the cost of the project.",
               "Trade unions said they would seek talks with management.",
               "Regional officials said the plan had been discussed for months."]
    questions = {
        "founder": ["Who is the person behind the company {C}?", "Which person founded the firm {C}?",
                    "{C} was started by which entrepreneur?"],
        "hq": ["In which town is the head office of {C} located?", "Where does {C} have its headquarters?"],
        "site": ["Where is {C} building its new plant?", "Which town will host the new factory of {C}?"],
        "jobs": ["How many jobs is the new site of {C} expected to bring?",
                 "The new {C} plant is expected to employ how many people?"],
        "founded": ["In what year was {C} established?", "{C} has existed since which year?"],
        "product": ["What does {C} mainly make?", "Which products is {C} known for?"],
    }
    entities = {person: "person", company: "company", v["T1"]: "town", v["T2"]: "town",
                v["X"]: "product"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


def _prize(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    field, work_kind = rng.choice(_PRIZE_FIELDS)
    prize_word = namer.word(2)
    person, chair = namer.person(), namer.person()
    v = {"PR": f"the {prize_word} Prize for {field}", "PRs": f"the {prize_word} Prize",
         "P": person, "S": _surname(person), "T": namer.town(), "WD": _WORK_DESCRIPTIONS[work_kind],
         "W": _WORK_TITLES[work_kind].format(W=namer.word(2)),
         "A": f"{rng.randrange(10, 95, 5)},000 euros", "J": chair, "JS": _surname(chair),
         "date": _date(rng)}
    prize = f"{prize_word} Prize for {field}"
    facts = {
        "winner": (prize, "winner", person, "person"),
        "work": (person, "winning work", v["W"], "work"),
        "hometown": (person, "home town", v["T"], "town"),
        "amount": (prize, "award", v["A"], "money"),
        "jury": (prize, "jury chair", chair, "person"),
    }
    lede = (["{P} has won {PR} for {WD} {W}, the jury announced on {date}.",
             "On {date}, the jury of {PR} named {P} this year's winner for {WD} {W}.",
             "{P} received {PR} on {date} for {WD} {W}."], {"winner", "work"})
    slots = [
        (["{S}, who lives in {T}, has worked in the field for many years.",
          "Born and raised in {T}, {S} started out as a schoolteacher.",
          "{S} lives and works in {T}."], set(), {"hometown"}),
        (["The prize comes with an award of {A}.", "The award is worth {A}."], set(), {"amount"}),
        (["The jury was chaired by {J}.", "This year's jury, led by {J}, met for three days."],
         set(), {"jury"}),
        (["{S} said {W} had taken four years to finish.",
          "Critics have praised {W} for its restraint, and {S} called the prize a surprise."],
         {"work"}, set()),
        (["A celebration is planned in {T}, the home town of {S}, next week.",
          "Neighbours in {T} gathered to congratulate {S}."], {"hometown"}, set()),
        (["{S} said the {A} would pay for a new project.",
          "The {A} will be paid out in two instalments, the organisers said."], {"amount"}, set()),
        (["{JS} said the jury's choice of {S} was unanimous.",
          "{JS} described {W} by {S} as the strongest entry in years."], {"jury"}, set()),
        (["{S} is the first winner of {PRs} from the region."], {"winner"}, set()),
    ]
    fillers = ["More than three hundred entries were submitted this year.",
               "The ceremony will take place in the autumn.",
               "Previous winners include several first-time artists.",
               "The organisers plan to tour the shortlisted works next year."]
    questions = {
        "winner": ["Who was awarded {PR} this year?", "Which person is this year's recipient of {PR}?"],
        "work": ["For which work was {P} honoured?", "Which work earned {P} the prize?"],
        "hometown": ["Where does {P} live?", "Which town is home to {P}?"],
        "amount": ["How much money does {PR} carry?", "What is the value of {PR}?"],
        "jury": ["Who was the chair of the judges for {PR}?", "Which person led the jury for {PR}?"],
    }
    entities = {person: "person", chair: "person", prize: "prize", v["T"]: "town", v["W"]: "work"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


def _infrastructure(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    noun, kind, prep = rng.choice(_STRUCTURES)
    structure = f"the {namer.word(2)} {noun}"
    engineer = namer.person()
    v = {"B": structure, "kind": kind, "prep": prep, "T": namer.town(), "R": namer.word(2),
         "L": f"{rng.randrange(180, 2400, 20)} metres", "M": f"{rng.randrange(20, 480, 5)} million euros",
         "P": engineer, "S": _surname(engineer), "date": _date(rng)}
    name = structure[len("the "):]
    facts = {
        "location": (name, "town", v["T"], "town"),
        "river": (name, "crosses", v["R"], "river"),
        "length": (name, "length", v["L"], "length"),
        "cost": (name, "cost", v["M"], "cost"),
        "engineer": (name, "chief engineer", engineer, "person"),
    }
    lede = (["{B}, a new {kind} {prep} the {R} at {T}, opened to traffic on {date}.",
             "Traffic began using {B} {prep} the {R} at {T} on {date}.",
             "On {date}, {T} opened {B}, its long-awaited {kind} {prep} the {R}."],
            {"location", "river"})
    slots = [
        (["At {L}, it is the longest {kind} in the province.", "The {kind} is {L} long."],
         set(), {"length"}),
        (["It cost {M} to build.", "The final cost of the project was {M}."], set(), {"cost"}),
        (["The design was led by chief engineer {P}.",
          "{P}, the chief engineer of the project, oversaw construction."], set(), {"engineer"}),
        (["{S} said building {prep} the {R} had required new techniques."], {"engineer", "river"}, set()),
        (["{S} said all {L} of {B} had been built in under three years."], {"engineer", "length"}, set()),
        (["Commuters in {T} had waited years for {B}.",
          "Businesses in {T} expect {B} to bring more visitors."], {"location"}, set()),
        (["Critics argued that {M} was too much for a single {kind}.",
          "Of the {M}, about a third came from national funds."], {"cost"}, set()),
        (["Asked about delays, {S} said {B} had opened only two weeks late."], {"engineer"}, set()),
    ]
    fillers = ["A ceremony with local schoolchildren marked the opening.",
               "Tolls will not be charged.", "Cyclists will get a separate lane.",
               "The old ferry service will stop at the end of the month."]
    questions = {
        "location": ["Which town does {B} serve?", "Near which town is {B} located?"],
        "river": ["Which river does {B} cross?", "What waterway does {B} cross?"],
        "length": ["How long is {B}?", "What is the length of {B}?"],
        "cost": ["How much did {B} cost?", "What was the price of building {B}?"],
        "engineer": ["Who was the chief engineer of {B}?", "Which engineer led the building of {B}?"],
    }
    entities = {name: "structure", engineer: "person", v["T"]: "town", v["R"]: "river"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


def _sports(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    cup = f"the {namer.word(2)} Cup"
    mascots = rng.sample(_MASCOTS, 2)
    winner, loser = f"{namer.word(2)} {mascots[0]}", f"{namer.word(2)} {mascots[1]}"
    captain = namer.person()
    goals = rng.randint(1, 4)
    v = {"CUP": cup, "C1": winner, "C2": loser, "SC": f"{goals}-{rng.randint(0, goals - 1)}",
         "P": captain, "S": _surname(captain), "V": f"{namer.word(2)} {rng.choice(_VENUES)}",
         "crowd": f"{rng.randrange(3000, 40000, 500):,}", "date": _date(rng)}
    name = cup[len("the "):]
    facts = {
        "winner": (name, "winner", winner, "club"),
        "runner": (name, "runner-up", loser, "club"),
        "score": (name, "final score", v["SC"], "score"),
        "captain": (winner, "captain", captain, "person"),
        "venue": (name, "final venue", v["V"], "venue"),
    }
    lede = (["{C1} won {CUP} on {date}, beating {C2} {SC} in the final.",
             "{C1} beat {C2} {SC} on {date} to lift {CUP}.",
             "On {date}, {C1} claimed {CUP} with a {SC} win over {C2}."],
            {"winner", "runner", "score"})
    slots = [
        (["The final was played at {V} in front of {crowd} spectators.",
          "A crowd of {crowd} filled {V} for the match."], set(), {"venue"}),
        (["Captain {P} scored twice for {C1}.", "{P}, the captain of {C1}, scored the decisive goal."],
         set(), {"captain"}),
        (["{S} lifted the trophy for {C1} just before sunset.",
          "It was the first title for {C1} since {S} became captain."], {"captain"}, set()),
        (["The {SC} defeat was the second lost final for {C2} in three years.",
          "Supporters of {C2} left quietly after the {SC} result."], {"runner"}, set()),
        (["{V} will also host the final next season.", "Ticket sales at {V} broke a club record."],
         {"venue"}, set()),
        (["{S} said the team had trained all summer for this."], {"captain"}, set()),
        (["{C1} will now play in the continental qualifiers."], {"winner"}, set()),
    ]
    fillers = ["Rain delayed the start by twenty minutes.",
               "Both coaches praised the referee after the match.",
               "The league will announce next season's fixtures in the spring.",
               "Fans gathered in the main square to celebrate."]
    questions = {
        "winner": ["Which club won {CUP}?", "Which team are the new holders of {CUP}?"],
        "runner": ["Which team lost the final of {CUP}?",
                   "Who did the champions defeat in the final of {CUP}?"],
        "score": ["By what score was the final of {CUP} decided?",
                  "What was the result of the final of {CUP}?"],
        "captain": ["Who captains {C1}?", "Which player is the captain of {C1}?"],
        "venue": ["Where was the final of {CUP} held?", "At which ground was the final of {CUP} played?"],
    }
    entities = {name: "competition", winner: "club", loser: "club", captain: "person", v["V"]: "venue"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


def _science(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    animal = rng.choice(_ANIMALS)
    researcher = namer.person()
    species = f"the {namer.word(2)} {animal}"
    v = {"P": researcher, "S": _surname(researcher), "SP": species, "animal": animal,
         "I": f"{namer.town()} Institute of {rng.choice(_FIELDS_OF_STUDY)}",
         "REG": f"the {namer.word(2)} {rng.choice(_REGIONS)}", "N": str(rng.randint(7, 95)),
         "FOOD": f"{namer.word(2).lower()} {rng.choice(_PLANTS)}", "date": _date(rng)}
    name = species[len("the "):]
    facts = {
        "discoverer": (name, "discovered by", researcher, "person"),
        "institute": (researcher, "works at", v["I"], "institute"),
        "region": (name, "found in", v["REG"], "region"),
        "count": (name, "specimens", v["N"], "specimens"),
        "food": (name, "feeds on", v["FOOD"], "plant"),
    }
    lede = (["A team led by {P} has found {SP}, a previously unknown {animal}, in {REG}, the researchers said on {date}.",
             "{P} and colleagues reported on {date} the discovery of {SP} in {REG}.",
             "On {date}, researchers under {P} described {SP}, a new species from {REG}."],
            {"discoverer", "region"})
    slots = [
        (["{S} works at the {I}.", "{S} heads a small research group at the {I}."], set(), {"institute"}),
        (["So far the team has collected {N} specimens.", "The description is based on {N} specimens."],
         set(), {"count"}),
        (["{SP} appears to feed only on {FOOD}.",
          "The animals were found living on {FOOD}, a plant common in the area."], set(), {"food"}),
        (["{S} said {REG} had been poorly surveyed until recently.",
          "Colleagues of {S} plan to return to {REG} in the spring."], {"region"}, set()),
        (["The {I} will keep the specimens in its collection.",
          "Funding from the {I} paid for three field trips."], {"institute"}, set()),
        (["All {N} specimens were found within a few hundred metres of each other."], {"count"}, set()),
        (["{S} warned that draining {REG} would threaten {FOOD}, and with it {SP}.",
          "Without {FOOD}, {SP} could not survive, {S} said."], {"food", "region"}, set()),
        (["{S} first noticed {SP} while photographing plants."], {"discoverer"}, set()),
    ]
    fillers = ["The findings were published in a regional journal.",
               "Local volunteers helped with the fieldwork.",
               "The species has not yet been assessed for conservation status.",
               "Further surveys are planned for next year."]
    questions = {
        "discoverer": ["Who led the team that discovered {SP}?",
                       "Which researcher is credited with finding {SP}?"],
        "institute": ["Where does {P} work?", "Which institution employs {P}?"],
        "region": ["Where was {SP} found?", "In which area was {SP} discovered?"],
        "count": ["How many specimens of {SP} have been collected?",
                  "On how many specimens is the description of {SP} based?"],
        "food": ["What does {SP} feed on?", "Which plant does {SP} depend on?"],
    }
    entities = {researcher: "person", name: "species", v["I"]: "institute", v["REG"][len("the "):]: "region",
                v["FOOD"]: "plant"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


def _election(namer: _Namer, rng: random.Random) -> dict[str, Any]:
    winner, second = namer.person(), namer.person()
    v = {"P": winner, "S": _surname(winner), "T": namer.town(), "pct": f"{rng.randint(38, 71)} percent",
         "P2": second, "S2": _surname(second), "PARTY": f"the {namer.word(2)} Party",
         "PROJ": rng.choice(_PROJECTS).format(W=namer.word(2)), "date": _date(rng)}
    facts = {
        "mayor": (v["T"], "mayor", winner, "person"),
        "share": (winner, "vote share", v["pct"], "percent"),
        "runner": (v["T"], "mayoral runner-up", second, "person"),
        "party": (winner, "party", v["PARTY"], "party"),
        "pledge": (winner, "pledge", v["PROJ"], "project"),
    }
    lede = (["{P} was elected mayor of {T} on {date} with {pct} of the vote.",
             "Voters in {T} chose {P} as their new mayor on {date}, with {pct} of the vote.",
             "On {date}, {P} won the mayoral election in {T} with {pct} of the vote."],
            {"mayor", "share"})
    slots = [
        (["{P2} finished second.", "The runner-up, {P2}, conceded shortly after midnight."],
         set(), {"runner"}),
        (["{S} stood for {PARTY}.", "{S} is a member of {PARTY}."], set(), {"party"}),
        (["During the campaign {S} promised to build {PROJ}.",
          "The central promise of the campaign of {S} was {PROJ}."], set(), {"pledge"}),
        (["{S} said work on {PROJ} would start within a year.",
          "Opponents doubt that {T} can afford {PROJ}."], {"pledge"}, set()),
        (["{S2} said the campaign against {S} had been fair.",
          "{S2} will stay on the council of {T} as an opposition member."], {"runner"}, set()),
        (["It is the first time {PARTY} has held the office of mayor in {T}."], {"party"}, set()),
        (["The result of {pct} was the highest in {T} for two decades."], {"share"}, set()),
        (["{S} will take office in {T} at the start of next month."], {"mayor"}, set()),
    ]
    fillers = ["Turnout was higher than at the previous election.",
               "Counting took most of the night.",
               "The new council will meet for the first time next month.",
               "Several polling stations stayed open late because of queues."]
    questions = {
        "mayor": ["Who is the new mayor of {T}?", "Which candidate won the mayoral race in {T}?"],
        "share": ["What share of the vote did {P} receive?",
                  "With what percentage of votes was {P} elected?"],
        "runner": ["Who came second in the mayoral election in {T}?",
                   "Which candidate was runner-up in the vote for mayor of {T}?"],
        "party": ["Which party does {P} belong to?", "On which party's ticket did {P} run?"],
        "pledge": ["What did {P} promise to build?", "Which project was at the heart of the campaign of {P}?"],
    }
    entities = {winner: "person", second: "person", v["T"]: "town",
                v["PARTY"][len("the "):]: "party", v["PROJ"]: "project"}
    return {"values": v, "facts": facts, "lede": lede, "slots": slots, "fillers": fillers,
            "questions": questions, "entities": entities}


_STORIES = {"company": _company, "prize": _prize, "infrastructure": _infrastructure,
            "sports": _sports, "science": _science, "election": _election}


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------

def _render(template: str, values: dict[str, str]) -> str:
    text = template.format(**values)
    return text[0].upper() + text[1:]


def _order_sentences(story: dict[str, Any], rng: random.Random) -> list[str]:
    values = story["values"]
    lede_variants, introduced = story["lede"]
    introduced = set(introduced)
    sentences = [_render(rng.choice(lede_variants), values)]
    pending = list(story["slots"])
    while pending:
        ready = [slot for slot in pending if slot[1] <= introduced]
        slot = rng.choice(ready)
        pending.remove(slot)
        introduced |= slot[2]
        sentences.append(_render(rng.choice(slot[0]), values))
    room = rng.randint(max(MIN_SENTENCES, len(sentences)), MAX_SENTENCES) - len(sentences)
    for filler in rng.sample(story["fillers"], min(max(room, 0), len(story["fillers"]))):
        sentences.insert(rng.randint(1, len(sentences)), _render(filler, values))
    return sentences


def _number_distractors(kind: str, answer: str, text: str, rng: random.Random) -> list[str]:
    """Three nearby values of the same kind, formatted like the answer and absent from ``text``."""
    if kind == "score":
        home, away = map(int, answer.split("-"))
        pool = {f"{a}-{b}" for a in range(1, 6) for b in range(0, a)} - {answer}
        nearest = sorted(pool, key=lambda s: (abs(int(s[0]) - home) + abs(int(s[2]) - away), s))
        return rng.sample([s for s in nearest if not _mentions(text, s)][:8], 3)
    value = int(answer.split(" ")[0].split(",")[0])
    unit, widest = {"year": (1, 9), "jobs": (10, 120), "money": (5, 40), "length": (20, 400),
                    "cost": (5, 120), "specimens": (1, 30), "percent": (1, 12)}[kind]
    formats = {"year": "{}", "jobs": "{}", "money": "{},000 euros", "length": "{} metres",
               "cost": "{} million euros", "specimens": "{}", "percent": "{} percent"}
    choices: list[str] = []
    while len(choices) < 3:
        candidate = value + rng.choice([-1, 1]) * unit * rng.randint(1, widest // unit)
        formatted = formats[kind].format(candidate)
        if candidate > 0 and candidate != value and formatted not in choices and not _mentions(text, formatted):
            choices.append(formatted)
    return choices


_NUMERIC_KINDS = {"year", "jobs", "money", "length", "cost", "specimens", "percent", "score"}


def _fresh_value(kind: str, namer: _Namer, rng: random.Random) -> str:
    """A never-used invented value of a kind, for when the corpus offers too few distractors."""
    if kind == "person":
        return namer.person()
    if kind == "town":
        return namer.town()
    if kind == "club":
        return f"{namer.word(2)} {rng.choice(_MASCOTS)}"
    if kind == "product":
        return f"{namer.word(2)} {rng.choice(_PRODUCT_NOUNS)}"
    if kind == "work":
        return _WORK_TITLES[rng.choice(list(_WORK_TITLES))].format(W=namer.word(2))
    if kind == "river":
        return namer.word(2)
    if kind == "venue":
        return f"{namer.word(2)} {rng.choice(_VENUES)}"
    if kind == "institute":
        return f"{namer.town()} Institute of {rng.choice(_FIELDS_OF_STUDY)}"
    if kind == "region":
        return f"the {namer.word(2)} {rng.choice(_REGIONS)}"
    if kind == "plant":
        return f"{namer.word(2).lower()} {rng.choice(_PLANTS)}"
    if kind == "party":
        return f"the {namer.word(2)} Party"
    if kind == "project":
        return rng.choice(_PROJECTS).format(W=namer.word(2))
    raise ValueError(f"no generator for values of kind {kind!r}")


def _mentions(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs as whole words ("340" is not in "1,340" nor in "3400")."""
    if phrase not in text:  # the cheap test settles almost every call
        return False
    return re.search(rf"(?<![\w,.-]){re.escape(phrase)}(?![\w-]|[,.]\d)", text) is not None


def generate_corpus(num_documents: int = 60, seed: int = 0) -> list[dict]:
    """Generate ``num_documents`` invented news documents with multiple-choice probes.

    Deterministic in ``seed``. Each document is a dict with ``id``, ``text`` and ``probes``
    (each ``{"question", "options", "answer", "fact"}``, ``answer`` the index of the right
    option), plus ``kind``, ``sentences``, ``entities`` (name -> type) and ``facts``
    (``[subject, relation, object]``) that ``check_corpus`` uses.
    """
    if num_documents < 1:
        raise ValueError(f"num_documents must be at least 1, got {num_documents}")
    rng = random.Random(seed)
    namer = _Namer(rng)
    kinds = list(_STORIES)
    stories = []
    for index in range(num_documents):
        if index % len(kinds) == 0:
            rng.shuffle(kinds)
        kind = kinds[index % len(kinds)]
        story = _STORIES[kind](namer, rng)
        story["kind"] = kind
        story["sentences"] = _order_sentences(story, rng)
        stories.append(story)

    # Distractors of each kind come from the other documents first (as familiar to an updated
    # model as the answer is), then from fresh names.
    pool: dict[str, list[str]] = {}
    for story in stories:
        for _, _, obj, value_kind in story["facts"].values():
            pool.setdefault(value_kind, []).append(obj)

    documents = []
    for index, story in enumerate(stories):
        text = " ".join(story["sentences"])
        probes = []
        probed = rng.sample(sorted(story["questions"]), rng.choice([2, 3]))
        for key in probed:
            subject, relation, answer, value_kind = story["facts"][key]
            if value_kind in _NUMERIC_KINDS:
                distractors = _number_distractors(value_kind, answer, text, rng)
            else:
                candidates = sorted({c for c in pool[value_kind] if c != answer and not _mentions(text, c)})
                distractors = rng.sample(candidates, min(3, len(candidates)))
                while len(distractors) < 3:
                    distractors.append(_fresh_value(value_kind, namer, rng))
            options = distractors + [answer]
            rng.shuffle(options)
            question = _render(rng.choice(story["questions"][key]), story["values"])
            probes.append({"question": question, "options": options, "answer": options.index(answer),
                           "fact": [subject, relation]})
        documents.append({
            "id": f"news-{index:03d}", "kind": story["kind"], "text": text,
            "sentences": story["sentences"], "entities": story["entities"],
            "facts": [[s, r, o] for s, r, o, _ in story["facts"].values()], "probes": probes,
        })
    return documents


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def _longest_shared_run(question: list[str], sentence: list[str]) -> int:
    """Length of the longest run of consecutive words the two share (dynamic programming)."""
    best = 0
    previous = [0] * (len(sentence) + 1)
    for word in question:
        current = [0] * (len(sentence) + 1)
        for j, other in enumerate(sentence, 1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def is_copied_question(question: str, sentences: list[str], max_shared: float = 0.75) -> bool:
    """Whether a question repeats a document sentence rather than paraphrasing it.

    True when the question's words appear verbatim inside a sentence, or when one unbroken
    run of more than ``max_shared`` of its words does.
    """
    q = _words(question)
    for sentence in sentences:
        s = _words(sentence)
        if " ".join(q) in " ".join(s) or _longest_shared_run(q, s) > max_shared * len(q):
            return True
    return False


def check_corpus(documents: list[dict]) -> list[str]:
    """Every way ``documents`` break the corpus's promises, as readable lines (empty: none)."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    owner: dict[str, tuple[str, str]] = {}          # entity name -> (document id, type)
    surnames: dict[str, str] = {}
    facts: dict[tuple[str, str], tuple[str, str]] = {}
    for doc in documents:
        doc_id = doc["id"]
        if doc_id in seen_ids:
            problems.append(f"document id {doc_id} is used twice")
        seen_ids.add(doc_id)
        sentences = doc["sentences"]
        if " ".join(sentences) != doc["text"]:
            problems.append(f"{doc_id}: text is not its sentences joined")
        if not MIN_SENTENCES <= len(sentences) <= MAX_SENTENCES:
            problems.append(f"{doc_id}: {len(sentences)} sentences, outside {MIN_SENTENCES}..{MAX_SENTENCES}")
        for name, kind in doc["entities"].items():
            if name in owner and owner[name][0] != doc_id:
                problems.append(f"entity {name!r} appears in both {owner[name][0]} and {doc_id}")
            owner[name] = (doc_id, kind)
            if kind == "person":
                surname = _surname(name)
                if surnames.setdefault(surname, name) != name:
                    problems.append(f"surname {surname!r} is shared by {surnames[surname]!r} and {name!r}")
        for subject, relation, obj in doc["facts"]:
            if not _mentions(doc["text"], obj):
                problems.append(f"{doc_id}: fact {subject} / {relation} = {obj!r} is not in the text")
            earlier = facts.setdefault((subject, relation), (obj, doc_id))
            if earlier[0] != obj:
                problems.append(f"{subject} / {relation} is {earlier[0]!r} in {earlier[1]} "
                                f"but {obj!r} in {doc_id}")
        if len(doc["probes"]) < 2:
            problems.append(f"{doc_id}: only {len(doc['probes'])} probes")
        doc_facts = {(s, r): o for s, r, o in doc["facts"]}
        for probe in doc["probes"]:
            options, answer = probe["options"], probe["answer"]
            where = f"{doc_id}: probe {probe['question']!r}"
            if len(options) != 4 or len(set(options)) != 4:
                problems.append(f"{where} needs four distinct options, has {options}")
            if not isinstance(answer, int) or not 0 <= answer < len(options):
                problems.append(f"{where} has answer index {answer!r}")
                continue
            if not _mentions(doc["text"], options[answer]):
                problems.append(f"{where}: the answer {options[answer]!r} is not in the document")
            if doc_facts.get(tuple(probe["fact"])) != options[answer]:
                problems.append(f"{where}: the answer {options[answer]!r} is not the fact {probe['fact']}")
            for i, option in enumerate(options):
                if i != answer and _mentions(doc["text"], option):
                    problems.append(f"{where}: distractor {option!r} appears in the document")
            if is_copied_question(probe["question"], sentences):
                problems.append(f"{where} copies a document sentence")
            if not _restated(options[answer], doc["entities"].get(options[answer]) == "person", sentences):
                problems.append(f"{where}: the answer is never used after the first sentence")
    # An entity of one document must not turn up in another's text, where it could gain facts.
    for doc in documents:
        for name, (home, _) in owner.items():
            if home != doc["id"] and _mentions(doc["text"], name):
                problems.append(f"entity {name!r} of {home} is mentioned in {doc['id']}")
    return problems


def _restated(answer: str, is_person: bool, sentences: list[str]) -> bool:
    """Whether DiSC can learn a probed value: it is used in a sentence that has a prefix
    (index >= 1). A person counts as used when the surname is, as news refers to people."""
    names = [answer, _surname(answer)] if is_person else [answer]
    return any(_mentions(s, name) for s in sentences[1:] for name in names)


# ---------------------------------------------------------------------------------------------
# The bundled sample
# ---------------------------------------------------------------------------------------------

def update_sample(num_documents: int = SAMPLE_DOCUMENTS, seed: int = SAMPLE_SEED) -> dict:
    """A corpus in the service's upload shape: documents (id, text) and probes (with document_id)."""
    corpus = generate_corpus(num_documents, seed)
    return {
        "seed": seed,
        "num_documents": num_documents,
        "documents": [{"id": d["id"], "text": d["text"]} for d in corpus],
        "probes": [{"question": p["question"], "options": p["options"], "answer": p["answer"],
                    "document_id": d["id"]} for d in corpus for p in d["probes"]],
    }


def save_update_sample(path: str | Path = SAMPLE_PATH, num_documents: int = SAMPLE_DOCUMENTS,
                       seed: int = SAMPLE_SEED) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(update_sample(num_documents, seed), indent=2, ensure_ascii=False) + "\n")
    return path


def load_update_sample(path: str | Path = SAMPLE_PATH) -> dict:
    """The bundled sample (or another file of the same shape)."""
    return json.loads(Path(path).read_text())
