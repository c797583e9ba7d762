"""Shared by the job tests that check a run folder is left untouched."""

import os


def file_tree(folder):
    """{relative path: bytes} of every file under `folder`."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as stream:
                files[os.path.relpath(path, folder)] = stream.read()
    return files
