"""Optional grammar-constrained decoding of the pose answer.

At each step only a token that keeps the text a prefix of
"The contact point is (INT, INT), the gripper up direction is (INT, INT, INT), the gripper forward direction is
(INT, INT, INT)" may be chosen (the best-scoring such token among the top-k), and the end token only once the
answer is complete. The strict parser still runs afterwards: the grammar fixes the form, not the values, so an
off-image pixel or a zero-length direction is still reported as a PoseParseError.
"""

from __future__ import annotations

import re

# {P}: a pixel coordinate (up to 4 digits); {D}: a direction bin in [-50, 50] (up to 2 digits).
_TEMPLATE = re.split(r"(\{[PD]\})", "The contact point is ({P}, {P}), the gripper up direction is ({D}, {D}, {D}), "
                     "the gripper forward direction is ({D}, {D}, {D})")  # fmt: skip
_DIGITS = {"{P}": 4, "{D}": 2}


def pose_prefix_state(text: str) -> str:
    """'invalid', 'partial' (a prefix of some answer) or 'complete' (a whole answer)."""
    i = 0
    parts = [p for p in _TEMPLATE if p]
    for part in parts:
        if part not in _DIGITS:
            rest = text[i:]
            if len(rest) < len(part):
                return "partial" if part.startswith(rest) else "invalid"
            if not rest.startswith(part):
                return "invalid"
            i += len(part)
            continue
        m = re.match(r"-?\d{0,%d}" % _DIGITS[part], text[i:])
        num = m.group(0)
        j = i + len(num)
        if j == len(text):  # the number may still grow
            return "partial"
        if not re.fullmatch(r"-?\d+", num):
            return "invalid"
        i = j
    return "complete" if i == len(text) else "invalid"


class PoseGrammar:
    """Token filter for `DecodeSession.generate`: the best-scoring token that keeps the answer valid.

    Token strings are decoded once per vocabulary; candidates are tried best first, so a model that already
    writes the format costs one check per step.
    """

    def __init__(self, tokenizer, stop_id: int) -> None:
        self.tokenizer = tokenizer
        self.stop_id = stop_id
        self._pieces: list[str] | None = None

    def pieces(self) -> list[str]:
        if self._pieces is None:
            n = len(self.tokenizer)
            self._pieces = [self.tokenizer.decode([i], skip_special_tokens=True) for i in range(n)]
        return self._pieces

    def choose(self, generated: list[int], logits) -> int | None:
        """Best allowed next token given the tokens generated so far and this step's logits; None if none is."""
        pieces = self.pieces()
        text = "".join(pieces[t] for t in generated)
        state = pose_prefix_state(text)
        for t in logits.argsort(descending=True).tolist():
            if t == self.stop_id:
                if state == "complete":
                    return t
                continue
            if t < len(pieces) and pieces[t] and pose_prefix_state(text + pieces[t]) != "invalid":
                return t
        return self.stop_id if state == "complete" else None
