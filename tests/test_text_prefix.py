"""The frozen text prefix: lower + upper is the encoder, the memo changes nothing but the cost,
only the layers above k learn, and the memo survives a restart but not a corrupt file."""
import pytest
import torch

from model.encoders import TextEncoder
from model.text_models import resolve_text_encoder
from model.text_prefix import PrefixMemo

SENTENCES = ["a quietly wonderful film", "no.", "the plot falls apart in the second half and never recovers"]


def _batch(name: str = ""):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_text_encoder(name))
    t = tok(SENTENCES, padding=True, return_tensors="pt")
    return t["input_ids"], t["attention_mask"]


@pytest.mark.parametrize("k", [0, 3, 6])
def test_lower_then_upper_is_the_whole_encoder(k):
    torch.manual_seed(0)
    enc = TextEncoder("", frozen_layers=k).eval()
    ids, mask = _batch()
    whole = enc(ids, mask)
    split = enc.pool(enc.upper(enc.lower(ids, mask), mask), mask)
    assert torch.allclose(whole, split, atol=1e-5)


def test_memo_gives_the_same_outputs_and_counts_hits(tmp_path):
    enc = TextEncoder("", frozen_layers=4).eval()
    ids, mask = _batch()
    reference = enc(ids, mask)
    enc.memo = PrefixMemo(enc, tmp_path)
    first = enc(ids, mask)
    # The same sentences padded wider (another batch) hit the memo and give the same vectors.
    wider = torch.nn.functional.pad(ids, (0, 5), value=0), torch.nn.functional.pad(mask, (0, 5), value=0)
    second = enc(*wider)
    assert torch.allclose(first, reference, atol=1e-5) and torch.allclose(second, reference, atol=1e-5)
    assert (enc.memo.misses, enc.memo.hits) == (3, 3)


def test_only_layers_above_k_learn():
    enc = TextEncoder("", frozen_layers=4).train()
    ids, mask = _batch()
    enc(ids, mask).sum().backward()
    named = dict(enc.bert.named_parameters())
    assert all(p.grad is None for n, p in named.items() if n.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.3.")))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in named.items() if n.startswith("encoder.layer.5.attention"))


def test_all_layers_frozen_trains_nothing_and_needs_no_upper():
    enc = TextEncoder("", frozen_layers=6)
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="frozen_layers"):
        TextEncoder("", frozen_layers=7)


def test_memo_persists_and_a_corrupt_file_is_rebuilt(tmp_path):
    enc = TextEncoder("", frozen_layers=2).eval()
    ids, mask = _batch()
    enc.memo = PrefixMemo(enc, tmp_path)
    expected = enc(ids, mask)
    enc.memo.save()
    again = PrefixMemo(enc, tmp_path)
    assert len(again.states) == 3
    enc.memo = again
    assert torch.allclose(enc(ids, mask), expected, atol=1e-6) and again.misses == 0
    path = again.path
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rebuilt = PrefixMemo(enc, tmp_path)
    assert rebuilt.states == {}
    enc.memo = rebuilt
    assert torch.allclose(enc(ids, mask), expected, atol=1e-5) and rebuilt.misses == 3


def test_other_weights_get_another_memo(tmp_path):
    a = TextEncoder("", frozen_layers=2)
    b = TextEncoder("", frozen_layers=2)
    with torch.no_grad():
        b.bert.embeddings.word_embeddings.weight[5] += 1.0
    assert PrefixMemo(a, tmp_path).path != PrefixMemo(b, tmp_path).path
    assert PrefixMemo(a, tmp_path).path != PrefixMemo(TextEncoder("", frozen_layers=3), tmp_path).path


@pytest.mark.slow
def test_mpnet_lower_then_upper_is_the_whole_encoder():
    enc = TextEncoder("mpnet", frozen_layers=8).eval()
    ids, mask = _batch("mpnet")
    assert torch.allclose(enc(ids, mask), enc.pool(enc.upper(enc.lower(ids, mask), mask), mask), atol=1e-5)


def test_absent_transcripts_cost_one_memo_entry_whatever_the_padding(tmp_path):
    """Modality dropout hides the words of some rows; they run on their first token alone, so
    the memo does not fill with one padded row per batch width."""
    from model.config import ModelConfig
    from model.mmim import MMIM

    model = MMIM(ModelConfig(text_frozen_layers=2)).train()
    model.text.memo = PrefixMemo(model.text, tmp_path)
    ids, mask = _batch()
    for width in (ids.shape[1], ids.shape[1] + 3, ids.shape[1] + 7):
        wide_ids = torch.nn.functional.pad(ids, (0, width - ids.shape[1]))
        hidden = torch.nn.functional.pad(mask, (0, width - ids.shape[1])) * torch.tensor([[1], [0], [0]])  # rows 1, 2 absent
        out = model(wide_ids, hidden)
        assert out["present_text"].tolist() == [True, False, False]
    assert len(model.text.memo.states) == 2  # the first sentence, and the absent rows' lone first token
