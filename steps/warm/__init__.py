"""Warm interpreters for the embedded runner: Python processes that import a step's heavy libraries
(torch, Great Expectations) on an idle core before the step needs them. Imports nothing from steps."""
