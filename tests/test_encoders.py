"""The padded ("masked") LSTM must equal PyTorch's packed LSTM."""
import pytest
import torch
from torch import nn

from model.encoders import MaskedLSTM, reverse_within_length


def copy_weights(packed: nn.LSTM, masked: MaskedLSTM) -> None:
    with torch.no_grad():
        for layer in range(packed.num_layers):
            targets = [("", masked.forward_layers[layer])]
            if packed.bidirectional:
                targets.append(("_reverse", masked.backward_layers[layer]))
            for suffix, lstm in targets:
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(lstm, f"{name}_l0").copy_(getattr(packed, f"{name}_l{layer}{suffix}"))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_masked_lstm_equals_packed(bidirectional, layers):
    torch.manual_seed(0)
    packed = nn.LSTM(5, 7, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    masked = MaskedLSTM(5, 7, layers, bidirectional)
    copy_weights(packed, masked)
    lengths = torch.tensor([6, 1, 3, 6, 2])
    x = torch.randn(5, 6, 5)
    # Garbage in the padding must not leak into the result.
    for i, n in enumerate(lengths):
        x[i, n:] = 1e3
    seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = packed(seq)
    dirs = 2 if bidirectional else 1
    expected = h_n.view(layers, dirs, 5, 7)[-1].transpose(0, 1).reshape(5, dirs * 7)
    torch.testing.assert_close(masked(x, lengths), expected, rtol=1e-5, atol=1e-6)


def test_reverse_within_length_is_an_involution_that_keeps_padding():
    x = torch.arange(12.0).view(2, 6, 1)
    lengths = torch.tensor([4, 6])
    r = reverse_within_length(x, lengths)
    assert r[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert r[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    torch.testing.assert_close(reverse_within_length(r, lengths), x)


def test_mean_pool_sees_only_real_frames():
    import torch

    from model.encoders import SequenceEncoder

    torch.manual_seed(0)
    enc = SequenceEncoder(8, 4, 3, 1, False, 0.0, mean_pool=True).eval()
    x, lengths = torch.randn(2, 5, 8), torch.tensor([5, 2])
    padded = x.clone()
    padded[1, 2:] = 99.0  # whatever the padding holds
    torch.testing.assert_close(enc(x, lengths), enc(padded, lengths))
    # The pooled part is the mean of the (normalised) real frames: shifting them all shifts it.
    alone = enc(x[1:, :2], torch.tensor([2]))
    torch.testing.assert_close(alone, enc(x, lengths)[1:])
    assert enc.proj.in_features == 4 + 8
