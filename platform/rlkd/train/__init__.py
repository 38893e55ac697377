"""Ray Train side of a run: encoding, the per-worker loop, probes, dev metrics and the trainer."""
