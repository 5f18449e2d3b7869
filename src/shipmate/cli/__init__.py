"""The command line: Dokku-style verbs; commands parse, call one function, render."""
