"""Developer tool: models made by real exporters, run on the CPU provider, against their source.

Needs torch (and transformers for the HF models), which are not project dependencies:

    pip install torch==2.13.0 onnxscript transformers
    python tools/check_exporters.py [-k NAME] [--exporter legacy|dynamo|both]

Prints one line per (model, exporter) with the max relative error against PyTorch's output.
"""

from __future__ import annotations

import argparse
import io
import sys
import traceback
import warnings

import numpy as np


def _models():
    import torch
    from torch import nn

    torch.manual_seed(0)

    class ConvNet(nn.Module):
        """Grouped, depthwise and transposed convolutions with BN, pooling and a classifier."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4)
            self.depthwise = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32)
            self.pointwise = nn.Conv2d(32, 24, 1)
            self.up = nn.ConvTranspose2d(24, 8, 4, stride=2, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            x = self.stem(x)
            x = torch.nn.functional.hardswish(self.grouped(x))
            x = torch.nn.functional.relu6(self.depthwise(x))
            x = self.up(self.pointwise(x))
            x = self.pool(torch.nn.functional.gelu(x))
            x = torch.nn.functional.adaptive_avg_pool2d(x, 8)
            return torch.softmax(self.head(x.flatten(1)), -1)

    class RNNs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(12, 20, num_layers=2, bidirectional=True, batch_first=True)
            self.gru = nn.GRU(40, 16, batch_first=True)
            self.out = nn.Linear(16, 4)

        def forward(self, x):
            y, _ = self.lstm(x)
            y, h = self.gru(y)
            return self.out(y[:, -1] + h[0])

    models = {
        "convnet": (ConvNet().eval(), (torch.randn(2, 3, 32, 32),)),
        "lstm_gru": (RNNs().eval(), (torch.randn(3, 7, 12),)),
    }
    try:
        import transformers
    except ImportError:
        return models
    bert_cfg = transformers.BertConfig(
        vocab_size=500,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
    )
    gpt_cfg = transformers.GPT2Config(
        vocab_size=500, n_embd=64, n_layer=2, n_head=4, n_positions=64
    )
    ids = torch.randint(0, 500, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 12:] = 0

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = transformers.BertModel(bert_cfg).eval()

        def forward(self, ids, mask):
            return self.inner(input_ids=ids, attention_mask=mask).last_hidden_state

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = transformers.GPT2LMHeadModel(gpt_cfg).eval()

        def forward(self, ids):
            return self.inner(input_ids=ids, use_cache=False).logits

    models["hf_bert"] = (Bert().eval(), (ids, mask))
    models["hf_gpt2"] = (GPT2().eval(), (ids,))
    return models


def _export(model, args, dynamo: bool) -> bytes:
    import torch

    buf = io.BytesIO()
    names = [f"input_{i}" for i in range(len(args))]
    if dynamo:
        program = torch.onnx.export(model, args, dynamo=True, input_names=names)
        return program.model_proto.SerializeToString()
    torch.onnx.export(model, args, buf, dynamo=False, input_names=names, opset_version=17)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", default="")
    parser.add_argument("--exporter", default="both", choices=["legacy", "dynamo", "both"])
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    import tessera

    exporters = {"legacy": [False], "dynamo": [True], "both": [False, True]}[opts.exporter]
    failures = 0
    for name, (model, args) in _models().items():
        if opts.k not in name:
            continue
        with torch.no_grad():
            expected = model(*args).numpy()
        for dynamo in exporters:
            label = f"{name:10} {'dynamo' if dynamo else 'legacy':7}"
            try:
                data = _export(model, args, dynamo)
            except Exception as exc:  # noqa: BLE001 - the exporter's own limits are not ours
                print(f"skip {label} the exporter failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            try:
                sess = tessera.InferenceSession(data)
                feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
                (got,) = sess.run(None, feed)[:1]
                err = np.max(np.abs(got - expected) / (np.abs(expected) + 1e-3))
                ok = np.allclose(got, expected, rtol=1e-3, atol=1e-4)
                ops = sorted({n.split("_")[0] for n in sess.assignments})
                print(
                    f"{'ok  ' if ok else 'FAIL'} {label} max rel err {err:.2e}  nodes {len(sess.assignments)}"
                )
                if not ok:
                    failures += 1
                    print(f"     ops: {ops}")
            except Exception as exc:  # noqa: BLE001 - report every model, keep going
                failures += 1
                print(f"FAIL {label} {type(exc).__name__}: {str(exc)[:400]}")
                if "-v" in sys.argv:
                    traceback.print_exc()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
