"""What Tab completes at the prompt."""

from __future__ import annotations

from prompt_toolkit.document import Document

from actors.repl.consoles import CommandCompleter, colourize

WORDS = {
    "commands": ["app", "apps", "cells", "help", "logs", "push", "scale", "send", "status", "stop"],
    "apps": ["hello", "hello-2", "static"],
    "actors": ["bbs", "cell-1", "cloud_controller"],
    "messages": ["BBSSnapshot", "GetApp", "ListApps"],
}


def _complete(text: str) -> list[str]:
    completer = CommandCompleter(lambda: WORDS)
    return [c.text for c in completer.get_completions(Document(text), None)]  # type: ignore[arg-type]


def test_the_first_word_completes_to_command_names():
    assert _complete("sta") == ["status"]
    assert _complete("ap") == ["app", "apps"]


def test_a_command_that_takes_an_app_completes_app_names():
    assert _complete("scale hel") == ["hello", "hello-2"]
    assert _complete("logs ") == ["hello", "hello-2", "static"]


def test_flags_complete_from_the_commands_usage():
    assert "--recent" in _complete("logs hello --re")
    assert {"-i", "-m", "-k", "-f"} <= set(_complete("scale hello -"))


def test_send_completes_actor_names_then_message_types():
    assert _complete("send cl") == ["cloud_controller"]
    assert _complete("send bbs BBS") == ["BBSSnapshot"]


def test_help_completes_command_names():
    assert _complete("help pu") == ["push"]


def test_failed_is_red_and_ok_is_green_on_a_terminal():
    assert colourize("FAILED") == "\x1b[1;31mFAILED\x1b[0m"
    assert colourize("OK") == "\x1b[1;32mOK\x1b[0m"
    assert colourize("name: hello") == "name: hello"
