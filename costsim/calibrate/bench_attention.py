"""Attention: torch scaled_dot_product_attention (the flash backend on CUDA), head dims 64/128/192, causal and
not, sequence 512–16K; forward and backward timed apart. FLOPs (hardware.md, Attention): forward
2·b·h·s²·(d + d_v), halved when causal; backward 2.5× forward. b·s is held at TOKENS, heads = 2048 / d."""
from __future__ import annotations

HEAD_DIMS = (64, 128, 192)
SEQS = (512, 1024, 2048, 4096, 8192, 16384)
SEQS_QUICK = (1024, 4096, 16384)
SEQS_CPU = (128, 256)
TOKENS, TOKENS_CPU = 16384, 256
WIDTH, WIDTH_CPU = 2048, 256


def plan(device: str, quick: bool) -> list[tuple[int, bool, int]]:
    seqs = SEQS_CPU if device == "cpu" else SEQS_QUICK if quick else SEQS
    return [(hd, causal, s) for hd in HEAD_DIMS for causal in (True, False) for s in seqs]


def _backend(torch, device: str):
    """(context manager factory, kernel name): the flash backend on CUDA, the default elsewhere."""
    import contextlib
    if device == "cuda":
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            return (lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])), "sdpa-flash"
        except ImportError:
            pass
    return contextlib.nullcontext, "sdpa"


def run_case(torch, timer, hd: int, causal: bool, seq: int, device: str) -> list[dict]:
    tokens, width = (TOKENS_CPU, WIDTH_CPU) if device == "cpu" else (TOKENS, WIDTH)
    b, h = max(1, tokens // seq), max(1, width // hd)
    ctx, kernel = _backend(torch, device)
    F = torch.nn.functional
    q, k, v = (torch.randn(b, h, seq, hd, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    dout = torch.randn(b, h, seq, hd, device=device, dtype=torch.bfloat16)
    fwd_flops = 2.0 * b * h * seq * seq * (hd + hd) * (0.5 if causal else 1.0)
    out = {}
    with ctx():
        with torch.no_grad():
            out["fwd"] = timer.time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        holder = {}

        def forward():
            holder["o"] = F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        def backward():
            holder["o"].backward(dout)
        out["bwd"] = timer.time(backward, before=forward)
    rows = []
    for direction, t in out.items():
        flops = fwd_flops * (2.5 if direction == "bwd" else 1.0)
        rows.append({"family": "attention", "kernel": kernel, "direction": direction, "causal": causal,
                     "head_dim": hd, "seq_len": seq, "batch": b, "heads": h, "dtype": "bf16",
                     "tflops": flops / t.median_s / 1e12, "time_s": t.median_s, "repeats": t.repeats})
    return rows
