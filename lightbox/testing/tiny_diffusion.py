"""Build tiny, randomly initialised Stable Diffusion pipelines of the real diffusers classes, offline.

    python -m lightbox.testing.tiny_diffusion models/      # writes models/tiny-sd-inpaint, models/tiny-sd

They load through exactly the same code path as real checkpoints (``save_pretrained`` directories:
model_index.json, UNet, VAE, CLIP text encoder, CLIP tokenizer, scheduler) and run in about a second
per image on a CPU. Their pictures are noise-like: they test plumbing (shapes, seeds, batching,
compositing, metadata), not aesthetics. The tokenizer is written from a byte-level vocab.json and an
empty merges.txt, so no download is needed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-unicode table (printable characters stand for every byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tiny_tokenizer(directory: Path, max_length: int = 77):  # CLIPTokenizer
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    chars = list(_bytes_to_unicode().values())
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=max_length)


def build(out_dir: str | Path, inpainting: bool = True, seed: int = 0) -> Path:
    """Save a tiny pipeline to ``out_dir`` and return the path."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as src:  # the tokenizer is saved into the pipeline below
        tokenizer = tiny_tokenizer(Path(src))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=9 if inpainting else 4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[16, 32], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77,
    ))
    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipe = cls(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
               scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1), safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
    pipe.save_pretrained(out)
    return out


def build_all(root: str | Path) -> tuple[Path, Path]:
    root = Path(root)
    return build(root / "tiny-sd-inpaint", inpainting=True), build(root / "tiny-sd", inpainting=False)


if __name__ == "__main__":
    from lightbox.extras import MissingExtra, require_ai

    try:
        require_ai("python -m lightbox.testing.tiny_diffusion (it builds diffusers pipelines)")
    except MissingExtra as e:
        sys.exit(f"error: {e}")
    inpaint, txt2img = build_all(sys.argv[1] if len(sys.argv) > 1 else "models")
    sys.stdout.write(f"wrote {inpaint} and {txt2img}\n")
