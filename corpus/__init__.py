"""Corpus analysis scripts and corpora (`corpus/<name>/audio/`)."""
