"""Batched, multi-turn greedy decoding with one KV cache per conversation.

The image is encoded once, in the first chunk; every later question and answer is appended to the same cache,
so the three chain-of-thought turns cost one vision pass and one prefill of the image tokens. Positions are
computed here explicitly (M-RoPE for the first chunk via the model's own `get_rope_index`, then consecutive
text positions per row) instead of relying on the model's cached `rope_deltas`, so rows of a batch can carry
different text lengths: shorter rows are padded with masked tokens (attention mask 0), which no real token
ever attends to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache


class DecodeSession:
    """One batch of conversations that grow turn by turn (greedy, deterministic)."""

    def __init__(self, model, pad_id: int, stop_id: int, banned_ids: Sequence[int] = ()) -> None:
        self.model = model
        self.pad_id = pad_id
        self.stop_id = stop_id
        # Tokens an answer may never contain (image placeholders, <|im_start|>): generating one would corrupt
        # the conversation layout (an <|image_pad|> without an image breaks M-RoPE positions).
        self.banned = torch.tensor(sorted(set(banned_ids) - {stop_id}), dtype=torch.long)
        self.device = next(model.parameters()).device
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (B, T) over everything seen so far
        self.next_pos: torch.Tensor | None = None  # (B,) next text position per row
        self.pending: torch.Tensor | None = None  # (B, V) logits for the next token

    @torch.no_grad()
    def start(self, rows: list[list[int]], mm_types: list[list[int]], pixel_values, image_grid_thw) -> None:
        """First chunk of every row (with its image); rows are left-padded."""
        n = max(len(r) for r in rows)
        B = len(rows)
        ids = torch.full((B, n), self.pad_id, dtype=torch.long)
        mm = torch.zeros((B, n), dtype=torch.long)
        att = torch.zeros((B, n), dtype=torch.long)
        for i, (r, m) in enumerate(zip(rows, mm_types)):
            ids[i, n - len(r) :] = torch.tensor(r)
            mm[i, n - len(r) :] = torch.tensor(m)
            att[i, n - len(r) :] = 1
        ids, mm, att = ids.to(self.device), mm.to(self.device), att.to(self.device)
        thw = image_grid_thw.to(self.device)
        pos, _ = self.model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=thw, attention_mask=att)
        self.cache = DynamicCache(config=self.model.config.text_config)
        out = self.model(
            input_ids=ids, attention_mask=att, position_ids=pos, past_key_values=self.cache, use_cache=True,
            pixel_values=pixel_values.to(self.device, self.model.dtype), image_grid_thw=thw, mm_token_type_ids=mm,
            logits_to_keep=1,
        )  # fmt: skip
        self.mask = att
        real = pos.masked_fill(att[None] == 0, -1)
        self.next_pos = real.amax(dim=(0, 2)) + 1
        self.pending = out.logits[:, -1].float()

    @torch.no_grad()
    def extend(self, chunks: list[list[int]]) -> None:
        """Append one (possibly empty) token chunk per row; chunks are left-padded to the same length."""
        n = max(len(c) for c in chunks)
        if n == 0:
            return
        B = len(chunks)
        ids = torch.full((B, n), self.pad_id, dtype=torch.long, device=self.device)
        att = torch.zeros((B, n), dtype=torch.long, device=self.device)
        pos = torch.zeros((B, n), dtype=torch.long, device=self.device)
        for i, c in enumerate(chunks):
            k = len(c)
            if k:
                ids[i, n - k :] = torch.tensor(c, device=self.device)
                att[i, n - k :] = 1
                pos[i, n - k :] = self.next_pos[i] + torch.arange(k, device=self.device)
        self.next_pos = self.next_pos + att.sum(1)
        self.mask = torch.cat([self.mask, att], 1)
        out = self.model(
            input_ids=ids, attention_mask=self.mask, position_ids=pos[None].expand(3, B, n),
            past_key_values=self.cache, use_cache=True, logits_to_keep=1,
        )  # fmt: skip
        new = out.logits[:, -1].float()
        # Rows with an empty chunk keep their previous next-token logits.
        has = att[:, -1].bool()
        self.pending = torch.where(has[:, None], new, self.pending)

    @torch.no_grad()
    def generate(self, max_new_tokens: int, active: list[bool] | None = None, grammar=None) -> list[list[int]]:
        """Greedy-decode each active row until its stop token (included in the cache, not returned).

        `grammar` (e.g. constrained.PoseGrammar) picks, per row, the best-scoring token it allows; a
        row with no allowed token is ended (its partial answer then fails to parse, with a typed error).
        """
        B = self.pending.shape[0]
        active = [True] * B if active is None else list(active)
        done = [not a for a in active]
        out: list[list[int]] = [[] for _ in range(B)]
        for _ in range(max_new_tokens):
            if all(done):
                break
            logits = self.pending
            if self.banned.numel():
                logits = logits.index_fill(1, self.banned.to(logits.device), float("-inf"))
            if grammar is None:
                nxt = logits.argmax(-1).tolist()
            else:
                nxt = []
                for i in range(B):
                    t = None if done[i] else grammar.choose(out[i], logits[i])
                    nxt.append(self.stop_id if t is None else t)
            step = []
            for i in range(B):
                if done[i]:
                    step.append([])
                    continue
                step.append([nxt[i]])
                if nxt[i] == self.stop_id:
                    done[i] = True
                else:
                    out[i].append(nxt[i])
            if all(len(s) == 0 for s in step):
                break
            self.extend(step)
        # Rows that ran out of budget get a stop token so the next turn starts cleanly.
        unfinished = [[self.stop_id] if (a and not d) else [] for a, d in zip(active, done)]
        if any(unfinished):
            self.extend(unfinished)
        return out
