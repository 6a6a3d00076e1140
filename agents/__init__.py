"""Environments, policies, training and evaluation."""
