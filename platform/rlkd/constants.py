"""Names shared by every stage: languages, labels and the table columns."""

# ISO 639-1 codes of the languages that get their own KD weight, in the
# order used by every weight vector and per-language array in rlkd.
LANGS: tuple[str, ...] = ("en", "es", "hi")

# Tokens that belong to no language (punctuation, emoji, named entities,
# mentions) are tagged with this name after the corpus tag map is applied.
OTHER = "other"

# Sentiment classes; a label id is its index here.
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# Per-language token proportion columns of the prepared tables.
PROPORTION_COLUMNS: tuple[str, ...] = tuple(f"p_{lang}" for lang in LANGS)

# Students that `rlkd compare` can train: CE only, uniform KD, Group-DRO weights,
# temperature-scaled data-share weights, and RL-weighted KD.
METHODS: tuple[str, ...] = ("none", "kd", "dro", "temperature", "rl")
