"""rlkd: adaptive, per-language knowledge distillation on Ray."""

__version__ = "0.1.0"
