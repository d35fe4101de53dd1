"""Build a tiny, randomly initialised image-text-to-text model entirely offline.

The model is Llava-style: a 1-layer CLIP vision tower (hidden 32, 32x32 input,
8x8 patches -> 16 image tokens per frame), a 2-layer MLP projector and a
1-layer Llama text model (hidden 32) over a byte-level BPE tokenizer trained
here on a few sentences. Everything -- configs, weights, tokenizer, image
processor, processor and chat template -- is written with ``save_pretrained``
so that ``AutoProcessor.from_pretrained(dir)`` and
``AutoModelForImageTextToText.from_pretrained(dir)`` load it with
``HF_HUB_OFFLINE=1``. Nothing is fetched from any hub. Building takes a
fraction of a second once transformers is imported (that import costs ~3 s), and
the weights are about 200 kB.

The captions such a model writes are gibberish; the point is to exercise the
real loading, chat-template, batching, padding, generation and decoding path.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_TOKEN = "<image>"
BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"

# Llava-1.5-like template: the role in capitals, each image as one <image>
# placeholder (the processor expands it to one token per image patch).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] | upper }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_CORPUS = [
    "A man in a red jacket walks across a busy street at night.",
    "Two people sit at a table and talk in a bright kitchen.",
    "A dog runs along the beach while waves roll in.",
    "Text on a sign reads OPEN 24 HOURS above a shop door.",
    "A woman holds a phone and points at a screen in an office.",
    "Cars drive on a highway past green fields under a cloudy sky.",
    "Describe what happens in these frames from one video clip.",
    "USER: ASSISTANT: people actions objects setting visible text",
]

IMAGE_SIZE = 32
PATCH_SIZE = 8


def _build_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK, IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
    )


def build_tiny_vlm(dir: Path) -> Path:  # noqa: A002 - name fixed by the test API
    """Write a tiny Llava-style VLM into ``dir`` and return ``dir``."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tokenizer = _build_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(dir)

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by "default"
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    processor.save_pretrained(dir)
    return dir
