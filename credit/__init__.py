"""Bati Bank credit scoring domain logic."""
