"""One evaluated example as a record, saved as JSONL for inspection and re-aggregation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from calltune.errors import InputError
from calltune.evaluate.metrics import Judgement
from calltune.io import read_jsonl, write_jsonl


@dataclass(frozen=True)
class Prediction:
    id: str
    prompt: str
    raw_output: str
    calls: list[dict]  # parsed calls [{"name", "arguments"}] (possibly partial when parse_error is set)
    expected: list[dict]  # [] for an example where no call is expected
    parse_error: str | None
    latency_s: float
    n_generated_tokens: int
    judgement: Judgement

    def to_dict(self) -> dict:
        """Flat JSON row: the record's fields followed by the judgement's (verdict, reason, ...)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "judgement"}
        return row | asdict(self.judgement)

    @classmethod
    def from_dict(cls, row: dict) -> Prediction:
        judgement = Judgement(**{f.name: row[f.name] for f in fields(Judgement)})
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name != "judgement"}, judgement=judgement)


def write_predictions(path, predictions: list[Prediction]) -> int:
    return write_jsonl(path, (p.to_dict() for p in predictions))


def read_predictions(path) -> list[Prediction]:
    """Read a predictions JSONL file; a row missing a field names its line and the field."""
    needed = [f.name for f in fields(Prediction) if f.name != "judgement"] + [f.name for f in fields(Judgement)]
    predictions = []
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=path, line=lineno)
        missing = [name for name in needed if name not in row]
        if missing:
            raise InputError("missing field", path=path, line=lineno, field=missing[0])
        predictions.append(Prediction.from_dict(row))
    return predictions
