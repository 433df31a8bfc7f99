"""Engine fixtures shared by the engine tests, one instance per test module: the tiny model (a
base to train from), its tokenizer, and one document of seven sentences of different lengths."""

from __future__ import annotations

import pytest

from disc_engine.models import load_model, load_tokenizer
from disc_engine.splitting import prepare_document

TEXT = (
    "The Varnholt harbour bridge opened on the third of March 2031. "
    "Its central span of 1,240 metres made it the longest suspension bridge in northern Europe at the time. "
    "It cost 2.8 billion euros. "
    "Engineer Mara Quell replaced the steel deck with a carbon-composite structure that weighs half as much. "
    "Traffic was heavy. "
    "Local fishermen had opposed the construction, arguing that the new pylons would disturb the herring. "
    "A tram line now links the old town with the airport on Skerra Island."
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def base(tiny_model):
    return load_model(tiny_model)


@pytest.fixture(scope="module")
def sentences(tokenizer):
    sentence_ids = prepare_document(TEXT, tokenizer).sentence_ids
    assert len({len(s) for s in sentence_ids}) >= 5  # suffixes of different lengths share a batch
    return sentence_ids
