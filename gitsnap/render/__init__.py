"""Renderers turn api results into text for people (``text``) or programs (``json``)."""
