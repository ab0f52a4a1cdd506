"""The CLI dispatcher: every verb module exists and typos get a suggestion."""

from __future__ import annotations

import importlib

import pytest

from hsrpose.cli import VERBS, main


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_a_module(verb: str) -> None:
    mod = importlib.import_module(f"hsrpose.commands.{verb.replace('-', '_')}")
    assert callable(mod.add_arguments) and callable(mod.run)


def test_unknown_verb_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modles"]) == 2
    assert "Did you mean 'models'" in capsys.readouterr().err


def test_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out
