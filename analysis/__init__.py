"""Analyses over polypipe programs (installed as ``polypipe.analysis``); they never mutate."""
