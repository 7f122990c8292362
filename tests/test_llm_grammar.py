"""The text bridge's action grammar: formatting, the reply parser's rules, and its promises
(it never raises, its errors are few and short, and it reads back what ``format_reply`` wrote)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marl.llm.grammar import (
    MAX_ERROR_LINES,
    Message,
    TextAction,
    format_reply,
    parse_reply,
)

STALKERS = ["Stalker-1", "Stalker-2"]

PYSC2_EXAMPLE = """\
Analysis:
  The enemy Zealots are closing in; focus fire and kite.
Actions:
  Team Stalker-1:
    <Attack_Unit(0x101480001)>
    <Move_Screen([67, 96])>
  Team Stalker-2:
    <Stop()>
Communications:
    <MessageTo(Commander, '''Copy that, moving in.''')>
    <ListenTo(Channel-1)>
"""


def reply(*action_lines: str) -> str:
    """A reply whose action section holds these lines (line 1 is "Actions:")."""
    return "\n".join(["Actions:", *action_lines])


def test_llm_pysc2_example():
    parsed = parse_reply(PYSC2_EXAMPLE, STALKERS)
    assert parsed.actions == {
        "Stalker-1": [
            TextAction("Attack_Unit", ("0x101480001",)),
            TextAction("Move_Screen", point=(67, 96)),
        ],
        "Stalker-2": [TextAction("Stop")],
    }
    assert parsed.messages == [Message("Commander", "Copy that, moving in.")]
    assert parsed.listen == ["Channel-1"]
    assert parsed.errors == []


def test_text_forms():
    assert TextAction("Attack_Unit", ("0x100030001",)).text() == "<Attack_Unit(0x100030001)>"
    assert TextAction("Move_Screen", point=(23, 37)).text() == "<Move_Screen([23, 37])>"
    assert TextAction("Stop").text() == "<Stop()>"
    both = TextAction("Load_Unit", ("0x1a", "0x2b"), (-4, 5))
    assert both.text() == "<Load_Unit(0x1a, 0x2b, [-4, 5])>"
    assert Message("Commander", "hello").text_form() == "<MessageTo(Commander, '''hello''')>"


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextAction("Attack Unit"),
        lambda: TextAction("MessageTo"),
        lambda: TextAction("Stop", ("0x1", "0x2", "0x3", "0x4")),
        lambda: TextAction("Stop", ("0X1F",)),
        lambda: TextAction("Move_Screen", point=(10**9, 0)),
        lambda: Message("two words", "hi"),
    ],
)
def test_unwritable_actions_and_messages_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_arguments_are_read_leniently():
    parsed = parse_reply(reply("<Attack_Unit(0x1F2e)>", "< Move_Screen ( [-3,4] ) >"), ["A"])
    assert parsed.actions["A"] == [
        TextAction("Attack_Unit", ("0x1f2e",)),
        TextAction("Move_Screen", point=(-3, 4)),
    ]
    assert parsed.errors == []


def test_team_lines_switch_the_team():
    text = reply(
        "Team Stalker-1:",
        "<Stop()>",
        "  **Team Stalker-2:**",
        "<Attack_Unit(0x2)>",
        "Team Stalker-1 :",
        "<Move_Screen([1, 2])>",
    )
    parsed = parse_reply(text, STALKERS)
    assert parsed.actions == {
        "Stalker-1": [TextAction("Stop"), TextAction("Move_Screen", point=(1, 2))],
        "Stalker-2": [TextAction("Attack_Unit", ("0x2",))],
    }
    assert parsed.errors == []


def test_unknown_team_drops_its_actions_until_the_next_team_line():
    text = reply("Team Zealot-9:", "<Stop()>", "<Stop()>", "Team Stalker-2:", "<Stop()>")
    parsed = parse_reply(text, STALKERS)
    assert parsed.actions == {"Stalker-1": [], "Stalker-2": [TextAction("Stop")]}
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("line 2: unknown team 'Zealot-9'")
    assert "Stalker-1, Stalker-2" in parsed.errors[0]


def test_actions_before_any_team_line():
    text = reply("<Stop()>", "<Attack_Unit(0x5)>")
    one_team = parse_reply(text, ["Stalker-1"])
    assert one_team.actions == {
        "Stalker-1": [TextAction("Stop"), TextAction("Attack_Unit", ("0x5",))]
    }
    assert one_team.errors == []
    several = parse_reply(text, STALKERS)
    assert several.actions == {"Stalker-1": [], "Stalker-2": []}
    assert len(several.errors) == 1
    assert several.errors[0].startswith("line 2: action outside a team")
    assert "Team Stalker-1:, Team Stalker-2:" in several.errors[0]


def test_max_actions_keeps_the_first_and_says_how_many_were_dropped():
    moves = [f"<Move_Screen([{i}, {i}])>" for i in range(5)]
    text = reply("Team A:", *moves[:3], "Team B:", "<Stop()>", "Team A:", *moves[3:])
    parsed = parse_reply(text, ["A", "B"], max_actions=2)
    assert parsed.actions["A"] == [TextAction("Move_Screen", point=(i, i)) for i in range(2)]
    assert parsed.actions["B"] == [TextAction("Stop")]
    assert parsed.errors == ["team A: 3 action(s) after the first 2 dropped"]


def test_no_actions_section():
    text = "Analysis:\n  <Stop()>\nCommunications:\n  <MessageTo(Channel-2, 'hold')>\n"
    parsed = parse_reply(text, ["A"])
    assert parsed.actions == {"A": []}
    assert parsed.messages == [Message("Channel-2", "hold")]
    assert parsed.errors == ["the reply has no 'Actions:' section, so no actions were taken"]


def test_communications_ends_the_actions():
    text = reply("<Stop()>", "Communications:", "  <Attack_Unit(0x1)>", "  <ListenTo(Channel-3)>")
    parsed = parse_reply(text, ["A"])
    assert parsed.actions == {"A": [TextAction("Stop")]}
    assert parsed.listen == ["Channel-3"]
    assert len(parsed.errors) == 1 and parsed.errors[0].startswith("line 4: '<Attack_Unit(0x1)>'")


@pytest.mark.parametrize(
    "line",
    [
        "<Attack_Unit(0x1)",  # no closing >
        "<Stop>",  # no parentheses
        "<1Stop()>",  # not an identifier
        "< >",
        "<Move_Screen([1, 2)>",
        "<Attack_Unit(0x1, enemy)>",  # unrecognised argument
        "<Attack_Unit(0x1g)>",
        "<Move_Screen([1.5, 2])>",
        "<Move_Screen([1, 2], [3, 4])>",  # two points
        "<Attack_Unit(0x1, 0x2, 0x3, 0x4)>",  # four tags
        "<Move_Screen([1234567890, 1])>",  # ten digits
        "<MessageTo(Commander, hello)>",  # unquoted text
        "<MessageTo(the commander, 'hello')>",  # bad target
        "<MessageTo(Commander, 'hello)>",  # never closed on its line
        "<ListenTo(Commander)>",  # not a channel
    ],
)
def test_malformed_lines_give_errors_and_nothing_else(line):
    parsed = parse_reply(reply("Team A:", "  " + line), ["A"])
    assert parsed.actions == {"A": []} and parsed.messages == [] and parsed.listen == []
    assert parsed.errors and all(error.startswith("line 3: ") for error in parsed.errors)


def test_several_tokens_on_one_line():
    text = reply("<Stop()> then <Move_Screen([1,2])>", "<Attack_Unit(0x1)><ListenTo(Channel-1)>")
    parsed = parse_reply(text, ["A"], max_actions=5)
    assert parsed.actions["A"] == [
        TextAction("Stop"),
        TextAction("Move_Screen", point=(1, 2)),
        TextAction("Attack_Unit", ("0x1",)),
    ]
    assert parsed.listen == ["Channel-1"]
    assert parsed.errors == []
    broken = parse_reply(reply("<Attack_Unit(0x1 <Stop()>"), ["A"])
    assert broken.actions["A"] == [TextAction("Stop")]
    assert len(broken.errors) == 1 and "'<Attack_Unit(0x1 '" in broken.errors[0]


def test_message_quotes_and_lines():
    text = "\n".join([
        "Actions:",
        "Communications:",
        "  <MessageTo(Stalker-2, '''Plan:",
        "Actions: do not read me",
        "  Team B:",
        "  <Stop()>''' )>  <ListenTo(Channel-4)>",
        "  <MessageTo(Channel-1, 'I'm coming')>",
        '  <MessageTo(Commander, "say "go"")>',
        "  <MessageTo(Commander, '''a > b, see <this>''')>",
    ])
    parsed = parse_reply(text, ["A"])
    assert parsed.messages == [
        Message("Stalker-2", "Plan:\nActions: do not read me\n  Team B:\n  <Stop()>"),
        Message("Channel-1", "I'm coming"),
        Message("Commander", 'say "go"'),
        Message("Commander", "a > b, see <this>"),
    ]
    assert parsed.listen == ["Channel-4"]
    assert parsed.actions == {"A": []} and parsed.errors == []


def test_a_message_that_never_ends_does_not_swallow_the_reply():
    text = reply("Team A:", "<MessageTo(Commander, '''on my way)>", "<Stop()>")
    parsed = parse_reply(text, ["A"])
    assert parsed.actions["A"] == [TextAction("Stop")] and parsed.messages == []
    assert len(parsed.errors) == 1 and parsed.errors[0].startswith("line 3: message to")


def test_errors_are_capped_and_short():
    parsed = parse_reply(reply(*["<" + "x" * 500] * 50), ["A"])
    assert len(parsed.errors) == MAX_ERROR_LINES + 1
    assert parsed.errors[-1] == f"... {50 - MAX_ERROR_LINES} more errors"
    assert all(len(error) < 200 and "\n" not in error for error in parsed.errors)


def test_programming_errors_raise():
    with pytest.raises(ValueError, match="team"):
        parse_reply("Actions:", [])
    with pytest.raises(ValueError, match="max_actions"):
        parse_reply("Actions:", ["A"], max_actions=0)
    with pytest.raises(ValueError, match="team name"):
        parse_reply("Actions:", ["A:B"])
    with pytest.raises(ValueError, match="header"):
        format_reply({"A": []}, analysis="Actions: none")
    with pytest.raises(ValueError, match="end mark"):
        format_reply({"A": []}, [Message("B", "x''')>y")])
    with pytest.raises(ValueError, match="channel"):
        format_reply({"A": []}, listen=["Commander"])


# --- properties ------------------------------------------------------------------------------
FRAGMENTS = [
    "Actions:", "Action:", "Communications:", "Team A:", "Team B :", "Team Z:", "<", ">", "(",
    ")", "0x1f", "0X1F", "[3, 4]", "[-3,", "'''", "'", '"', ",", " ", "\n", "\r\n",
    "MessageTo", "ListenTo", "Channel-1", "Stop", "<Stop()>", "<MessageTo(A, '''", "''')>",
]
grammarish_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=60).map(
    "".join
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.text() | grammarish_text, max_actions=st.integers(1, 4))
def test_parser_never_raises_and_errors_stay_few(text, max_actions):
    parsed = parse_reply(text, ["A", "B"], max_actions=max_actions)
    assert len(parsed.errors) <= MAX_ERROR_LINES + 1
    assert all(len(error) < 300 and "\n" not in error for error in parsed.errors)
    assert set(parsed.actions) == {"A", "B"}
    assert all(len(kept) <= max_actions for kept in parsed.actions.values())


LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
identifiers = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "0123456789", max_size=12)
).filter(lambda name: name not in {"MessageTo", "ListenTo"})
tags = st.integers(0, 2**40).map(hex)
coordinates = st.integers(-(10**9) + 1, 10**9 - 1)
text_actions = st.builds(
    TextAction,
    name=identifiers,
    tags=st.lists(tags, max_size=3).map(tuple),
    point=st.none() | st.tuples(coordinates, coordinates),
)
targets = st.text(LETTERS + "0123456789-", min_size=1, max_size=12)
messages = st.builds(
    Message, to=targets, text=st.text(max_size=30).filter(lambda text: "'''" not in text)
)
channels = st.integers(0, 99).map(lambda i: f"Channel-{i}")
team_names = st.lists(targets, min_size=1, max_size=2).map(" ".join)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    actions=st.dictionaries(
        team_names, st.lists(text_actions, max_size=4), min_size=1, max_size=3
    ),
    messages=st.lists(messages, max_size=3),
    listen=st.lists(channels, max_size=3),
    analysis=st.text(max_size=40).filter(
        lambda text: not any(h in text for h in ("Action:", "Actions:", "Communications:"))
    ),
)
def test_format_then_parse_gives_back_the_same(actions, messages, listen, analysis):
    text = format_reply(actions, messages, listen, analysis)
    parsed = parse_reply(text, list(actions), max_actions=4)
    assert parsed.actions == actions
    assert parsed.messages == messages
    assert parsed.listen == listen
    assert parsed.errors == []
