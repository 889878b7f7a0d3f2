import numpy as np
import pytest

from envs.language import SUBTASK_VOCAB
from policies.tokenizer import WordTokenizer, split_words


def test_fit_encode_decode_and_unknown_words():
    tok = WordTokenizer.fit(["put the red cube on the green pad", *SUBTASK_VOCAB])
    ids = tok.encode("put the red cube on the green pad", max_len=12)
    assert ids.shape == (12,) and ids.dtype == np.int64 and ids[-1] == tok.pad_id
    assert tok.decode(ids) == "put the red cube on the green pad"
    unknown = tok.encode("put the teal sphere on the pad", max_len=8)
    assert list(unknown[:4]) == [
        tok.encode("put", 1)[0],
        tok.encode("the", 1)[0],
        tok.unk_id,
        tok.unk_id,
    ]
    assert tok.encode("a b c d e f", max_len=3).shape == (3,)


def test_subtask_labels_tokenise_to_their_parts():
    assert split_words("push(blue_cube, left)") == [
        "push",
        "(",
        "blue",
        "_",
        "cube",
        ",",
        "left",
        ")",
    ]
    tok = WordTokenizer.fit(SUBTASK_VOCAB)
    ids = tok.encode_batch(list(SUBTASK_VOCAB), max_len=10)
    assert len({tuple(r) for r in ids}) == len(SUBTASK_VOCAB)  # every label stays distinct
    assert tok.unk_id not in ids


def test_same_texts_same_ids_and_round_trip():
    a = WordTokenizer.fit(["b a", "c"])
    b = WordTokenizer.fit(["c", "a b"])
    assert a == b and WordTokenizer.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="starts with"):
        WordTokenizer(("a", "b"))
    with pytest.raises(ValueError, match="max_len"):
        a.encode("a", 0)
